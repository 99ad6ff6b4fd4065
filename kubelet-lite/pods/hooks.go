package pods

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hivelet/hivelet/kubelet-lite/cri"
)

// minimumGracePeriod is what a container still gets to stop after its
// preStop hook used up the grace period (the upstream kubelet's 2 s).
const minimumGracePeriod = 2

// runHook runs a lifecycle handler for the container with id: a command
// in it, an HTTP GET (any answer counts, as upstream) or a sleep, within
// ctx.
func (m *Manager) runHook(ctx context.Context, pod *corev1.Pod, c *corev1.Container, id string, h *corev1.LifecycleHandler) error {
	switch {
	case h.Exec != nil:
		timeout := int64(0)
		if dl, ok := ctx.Deadline(); ok {
			timeout = max(int64(time.Until(dl).Seconds()), 1)
		}
		r, err := m.rt.Runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: h.Exec.Command, Timeout: timeout})
		if err != nil {
			return err
		}
		if r.ExitCode != 0 {
			return fmt.Errorf("command %q exited with %d: %s", h.Exec.Command, r.ExitCode, r.Stdout)
		}
		return nil
	case h.HTTPGet != nil:
		_, _, err := httpGet(ctx, h.HTTPGet, c, m.podIPOf(ctx, pod), "kube-lifecycle/1.37")
		return err
	case h.Sleep != nil:
		select {
		case <-time.After(secondsDur(h.Sleep.Seconds)):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return errors.New("the lifecycle handler has no action")
}

// podIPOf is the pod's first address, for hooks that reach the pod.
func (m *Manager) podIPOf(ctx context.Context, pod *corev1.Pod) string {
	if pod.Spec.HostNetwork {
		return m.hostIP()
	}
	rp, err := m.runtimePod(ctx, pod.UID)
	if err != nil {
		return ""
	}
	if sb := rp.readySandbox(); sb != nil {
		return firstOr(m.sandboxIPs(ctx, sb.Id))
	}
	return ""
}

// specOf is the pod's spec of the runtime container c.
func specOf(pod *corev1.Pod, c *runtimeapi.ContainerStatus) *corev1.Container {
	if pod == nil || c.Metadata == nil {
		return nil
	}
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			if cs[i].Name == c.Metadata.Name {
				return &cs[i]
			}
		}
	}
	return nil
}

// stopContainer runs the container's preStop hook within the grace
// period, then asks the runtime to stop it with what is left of that
// period (at least 2 s after a hook): SIGTERM, then SIGKILL.
func (m *Manager) stopContainer(ctx context.Context, pod *corev1.Pod, c *runtimeapi.ContainerStatus, grace int64) {
	if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
		m.event(pod, corev1.EventTypeNormal, "Killing", "Stopping container "+c.GetMetadata().GetName())
	}
	if spec := specOf(pod, c); spec != nil && spec.Lifecycle != nil && spec.Lifecycle.PreStop != nil && grace > 0 {
		start := time.Now()
		hctx, cancel := context.WithTimeout(ctx, secondsDur(grace))
		err := m.runHook(hctx, pod, spec, c.Id, spec.Lifecycle.PreStop)
		cancel()
		if err != nil {
			m.log.Warn("preStop hook failed", "pod", pod.Namespace+"/"+pod.Name, "container", spec.Name, "error", err)
			m.event(pod, corev1.EventTypeWarning, "FailedPreStopHook", fmt.Sprintf("PreStopHook failed: container %s: %v", spec.Name, err))
		}
		grace = max(grace-int64(time.Since(start).Seconds()), minimumGracePeriod)
	}
	sctx, cancel := context.WithTimeout(ctx, secondsDur(grace)+cri.CallTimeout)
	defer cancel()
	if _, err := m.rt.Runtime.StopContainer(sctx, &runtimeapi.StopContainerRequest{ContainerId: c.Id, Timeout: grace}); err != nil {
		m.log.Warn("Stopping a container failed", "container", c.Id, "error", err)
	}
}

// postStart runs the container's postStart hook right after it started;
// a failure kills the container (which restarts as its policy says), as
// upstream.
func (w *worker) postStart(ctx context.Context, pod *corev1.Pod, c *corev1.Container, id string) error {
	if c.Lifecycle == nil || c.Lifecycle.PostStart == nil {
		return nil
	}
	hctx, cancel := context.WithTimeout(ctx, cri.CallTimeout)
	err := w.m.runHook(hctx, pod, c, id, c.Lifecycle.PostStart)
	cancel()
	if err == nil {
		return nil
	}
	msg := fmt.Sprintf("PostStartHook failed: %v", err)
	w.m.log.Warn("postStart hook failed; killing the container", "pod", pod.Namespace+"/"+pod.Name, "container", c.Name, "error", err)
	w.m.event(pod, corev1.EventTypeWarning, "FailedPostStartHook", fmt.Sprintf("container %s: %s", c.Name, msg))
	w.m.stopContainer(ctx, pod, &runtimeapi.ContainerStatus{Id: id, Metadata: &runtimeapi.ContainerMetadata{Name: c.Name}}, gracePeriod(pod))
	return errors.New(msg)
}
