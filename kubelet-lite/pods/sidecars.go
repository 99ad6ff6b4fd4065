package pods

import (
	"context"
	"math"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// isSidecar reports a restartable init container (restartPolicy: Always):
// started in init order, kept running beside the main containers,
// stopped after them.
func isSidecar(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// restartPolicyOf is the container's own restart policy, else the pod's.
func restartPolicyOf(pod *corev1.Pod, c *corev1.Container) corev1.RestartPolicy {
	if c.RestartPolicy != nil {
		return corev1.RestartPolicy(*c.RestartPolicy)
	}
	return pod.Spec.RestartPolicy
}

// mainStarted reports that a main container has been created in sandbox
// sb: the pod is past its init phase, and neither init containers nor a
// restarting sidecar hold the main containers back any more.
func mainStarted(pod *corev1.Pod, rp *runtimePod, sb string) bool {
	for i := range pod.Spec.Containers {
		if cur, _ := rp.latest(pod.Spec.Containers[i].Name, sb); cur != nil {
			return true
		}
	}
	return false
}

// isStarted is a container running and past its startup probe, if any.
func (p *prober) isStarted(c *corev1.Container, cur *runtimeapi.ContainerStatus) bool {
	if cur == nil || cur.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return false
	}
	if c.StartupProbe == nil {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.started[cur.Id]
}

// stopInOrder stops the pod's running containers as upstream terminates a
// pod: the main (and regular init) containers together, then the
// sidecars one at a time in reverse order, all within one grace period.
// Without a pod spec (an orphan) everything stops together.
func (m *Manager) stopInOrder(ctx context.Context, pod *corev1.Pod, rp *runtimePod, grace int64) {
	deadline := time.Now().Add(secondsDur(grace))
	var sidecars []string
	if pod != nil {
		for _, c := range pod.Spec.InitContainers {
			if isSidecar(&c) {
				sidecars = append(sidecars, c.Name)
			}
		}
	}
	running := func(name string, sidecar bool) []*runtimeapi.ContainerStatus {
		var out []*runtimeapi.ContainerStatus
		for _, c := range rp.containers {
			if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING && slices.Contains(sidecars, c.Metadata.Name) == sidecar &&
				(name == "" || c.Metadata.Name == name) {
				out = append(out, c)
			}
		}
		return out
	}
	stopAll := func(cs []*runtimeapi.ContainerStatus) {
		left := max(int64(math.Ceil(time.Until(deadline).Seconds())), 0) // whole seconds, rounded up: never less than given
		var wg sync.WaitGroup
		for _, c := range cs {
			wg.Go(func() { m.stopContainer(ctx, pod, c, left) })
		}
		wg.Wait()
	}
	stopAll(running("", false))
	for i := len(sidecars) - 1; i >= 0; i-- {
		stopAll(running(sidecars[i], true))
	}
}
