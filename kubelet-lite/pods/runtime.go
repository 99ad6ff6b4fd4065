package pods

import (
	"context"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hivelet/hivelet/kubelet-lite/cri"
)

// runtimePod is what the runtime holds for one pod.
type runtimePod struct {
	sandboxes  []*runtimeapi.PodSandbox
	containers []*runtimeapi.ContainerStatus // oldest attempt first
}

func (m *Manager) runtimePod(ctx context.Context, uid types.UID) (*runtimePod, error) {
	ctx, cancel := cri.Ctx(ctx)
	defer cancel()
	sel := map[string]string{LabelPodUID: string(uid)}
	sbs, err := m.rt.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{LabelSelector: sel}})
	if err != nil {
		return nil, err
	}
	cs, err := m.rt.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{LabelSelector: sel}})
	if err != nil {
		return nil, err
	}
	rp := &runtimePod{sandboxes: sbs.Items}
	slices.SortFunc(rp.sandboxes, func(a, b *runtimeapi.PodSandbox) int { return int(a.CreatedAt - b.CreatedAt) })
	for _, c := range cs.Containers {
		st, err := m.rt.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: c.Id})
		if err != nil {
			continue // removed meanwhile
		}
		st.Status.Labels = c.Labels
		st.Status.Annotations = map[string]string{sandboxKey: c.PodSandboxId}
		for k, v := range c.Annotations {
			st.Status.Annotations[k] = v
		}
		rp.containers = append(rp.containers, st.Status)
	}
	slices.SortFunc(rp.containers, func(a, b *runtimeapi.ContainerStatus) int {
		if a.Metadata.Attempt != b.Metadata.Attempt {
			return int(a.Metadata.Attempt) - int(b.Metadata.Attempt)
		}
		return int(a.CreatedAt - b.CreatedAt)
	})
	return rp, nil
}

// readySandbox is the pod's live sandbox, nil if none.
func (rp *runtimePod) readySandbox() *runtimeapi.PodSandbox {
	for i := len(rp.sandboxes) - 1; i >= 0; i-- {
		if rp.sandboxes[i].State == runtimeapi.PodSandboxState_SANDBOX_READY {
			return rp.sandboxes[i]
		}
	}
	return nil
}

// latest returns the newest and the one before of container name within
// sandbox sb (empty: any).
func (rp *runtimePod) latest(name, sb string) (cur, prev *runtimeapi.ContainerStatus) {
	for _, c := range rp.containers {
		if c.Metadata.Name != name || sb != "" && !rp.inSandbox(c, sb) {
			continue
		}
		prev, cur = cur, c
	}
	return cur, prev
}

// sandboxKey carries a listed container's sandbox id along its status
// (ContainerStatus does not say it); never sent to the runtime.
const sandboxKey = "kubelet-lite/sandbox"

func (rp *runtimePod) inSandbox(c *runtimeapi.ContainerStatus, sb string) bool {
	return c.Annotations[sandboxKey] == sb
}

// removeRuntimePod stops every container of the pod (running its preStop
// hooks first, within the grace period), then its sandboxes, and removes
// them all.
func (m *Manager) removeRuntimePod(ctx context.Context, uid types.UID, grace int64, pod *corev1.Pod) {
	rp, err := m.runtimePod(ctx, uid)
	if err != nil {
		m.log.Warn("Cannot read a terminating pod's containers", "uid", uid, "error", err)
		return
	}
	m.stopInOrder(ctx, pod, rp, grace)
	cctx, cancel := cri.Ctx(ctx)
	defer cancel()
	for _, c := range rp.containers {
		if _, err := m.rt.Runtime.RemoveContainer(cctx, &runtimeapi.RemoveContainerRequest{ContainerId: c.Id}); err == nil {
			removeContainerLog(c.LogPath)
		}
	}
	for _, sb := range rp.sandboxes {
		if _, err := m.rt.Runtime.StopPodSandbox(cctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			m.log.Warn("Stopping a sandbox failed", "sandbox", sb.Id, "error", err)
		}
		if _, err := m.rt.Runtime.RemovePodSandbox(cctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			m.log.Warn("Removing a sandbox failed", "sandbox", sb.Id, "error", err)
		}
	}
}

// pruneDead removes a pod's exited container instances beyond what the
// container GC policy keeps: the newest instance of each container always
// (running, or the one `kubectl logs` shows), and MaxPerPodContainer dead
// ones besides (1: the one `kubectl logs --previous` reads), with their
// logs. A crash-looping container must not pile up instances and logs.
func (m *Manager) pruneDead(ctx context.Context, rp *runtimePod) {
	gc := m.containerGC()
	if gc.MaxPerPodContainer < 0 {
		return
	}
	dead := map[string]int{}
	newest := map[string]bool{}
	var old []*runtimeapi.ContainerStatus
	for i := len(rp.containers) - 1; i >= 0; i-- { // newest first
		c := rp.containers[i]
		name := c.Metadata.Name
		if !newest[name] {
			newest[name] = true
			continue
		}
		if c.State != runtimeapi.ContainerState_CONTAINER_EXITED {
			continue
		}
		dead[name]++
		if dead[name] > gc.MaxPerPodContainer && time.Since(time.Unix(0, c.CreatedAt)) >= gc.MinAge {
			old = append(old, c)
		}
	}
	m.removeDead(ctx, old)
}

// removeDead removes exited containers and their logs.
func (m *Manager) removeDead(ctx context.Context, old []*runtimeapi.ContainerStatus) {
	if len(old) == 0 {
		return
	}
	cctx, cancel := cri.Ctx(ctx)
	defer cancel()
	for _, c := range old {
		if _, err := m.rt.Runtime.RemoveContainer(cctx, &runtimeapi.RemoveContainerRequest{ContainerId: c.Id}); err != nil {
			m.log.Warn("Removing a dead container failed", "container", c.Id, "error", err)
			continue
		}
		removeContainerLog(c.LogPath)
		m.log.Debug("Removed a dead container", "container", c.Id, "name", c.Metadata.Name, "attempt", c.Metadata.Attempt)
	}
}
