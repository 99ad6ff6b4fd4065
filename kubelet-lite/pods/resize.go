package pods

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hivelet/hivelet/kubelet-lite/cri"
)

// In-place resize (InPlacePodVerticalScaling, GA since 1.35): a change of
// a running container's CPU or memory is applied to its cgroup with
// UpdateContainerResources, or by a restart where its resizePolicy asks
// for one, and status.containerStatuses[].resources and
// allocatedResources say what is applied. The spec hash leaves resources
// out so a resize is not a spec change.

// annotationResources records, on the container, the resources it was
// created with: after a restart of this kubelet they are what is applied
// until an update says otherwise.
const annotationResources = "io.hivelet.container.resources"

// resourcesAnnotation is the annotation's value for c.
func resourcesAnnotation(c *corev1.Container) string {
	b, _ := json.Marshal(appliedOf(c.Resources))
	return string(b)
}

// appliedOf keeps what a container's cgroups are made from: requests
// and limits, nil when empty (as the API returns them); claims are not
// resources of the container's cgroup.
func appliedOf(r corev1.ResourceRequirements) corev1.ResourceRequirements {
	out := corev1.ResourceRequirements{}
	if len(r.Requests) > 0 {
		out.Requests = r.Requests.DeepCopy()
	}
	if len(r.Limits) > 0 {
		out.Limits = r.Limits.DeepCopy()
	}
	return out
}

// applied is what the running instance cur has: the worker's record of
// its last update, else the resources it was created with; a container
// from before this record existed has its spec's (its old hash, which
// covered resources, matched).
func (w *worker) applied(c *corev1.Container, cur *runtimeapi.ContainerStatus) corev1.ResourceRequirements {
	if r, ok := w.resources[cur.Id]; ok {
		return r
	}
	var r corev1.ResourceRequirements
	if a := cur.Annotations[annotationResources]; a == "" || json.Unmarshal([]byte(a), &r) != nil {
		r = appliedOf(c.Resources)
	}
	w.resources[cur.Id] = r
	return r
}

// resizeChanges tells which of CPU and memory differ between what is
// applied and what the spec asks for (requests or limits, compared as
// quantities: 1000m is 1).
func resizeChanges(have, want corev1.ResourceRequirements) (cpu, mem bool) {
	differ := func(name corev1.ResourceName) bool {
		for _, pair := range [][2]corev1.ResourceList{{have.Requests, want.Requests}, {have.Limits, want.Limits}} {
			a, aok := pair[0][name]
			b, bok := pair[1][name]
			if aok != bok || aok && a.Cmp(b) != 0 {
				return true
			}
		}
		return false
	}
	return differ(corev1.ResourceCPU), differ(corev1.ResourceMemory)
}

// needsRestart reports whether a change of cpu or memory asks, by the
// container's resizePolicy, for a restart (the default is NotRequired).
func needsRestart(c *corev1.Container, cpu, mem bool) bool {
	for _, p := range c.ResizePolicy {
		if p.RestartPolicy != corev1.RestartContainer {
			continue
		}
		if p.ResourceName == corev1.ResourceCPU && cpu || p.ResourceName == corev1.ResourceMemory && mem {
			return true
		}
	}
	return false
}

// resize brings the running instance cur to c's resources; it returns
// true when the container must be restarted for it instead.
func (w *worker) resize(ctx context.Context, pod *corev1.Pod, c *corev1.Container, cur *runtimeapi.ContainerStatus) (restart bool) {
	have := w.applied(c, cur)
	cpu, mem := resizeChanges(have, c.Resources)
	if !cpu && !mem {
		return false
	}
	if needsRestart(c, cpu, mem) {
		return true
	}
	res := linuxResources(c)
	// An update keeps every value it is given as 0; a limit taken away
	// is "no limit" (-1) instead.
	if res.CpuQuota == 0 {
		res.CpuQuota = -1
	}
	if res.MemoryLimitInBytes == 0 {
		res.MemoryLimitInBytes = -1
	}
	// The pod's cgroup must hold the container's new limits: raised
	// before the container (a child's CFS quota may not exceed its
	// parent's), lowered after it; a lowering that fails here is done
	// after.
	_ = w.m.applyPodCgroup(pod)
	defer func() {
		if err := w.m.applyPodCgroup(pod); err != nil {
			w.m.log.Warn("Resizing a pod cgroup failed", "pod", pod.Namespace+"/"+pod.Name, "error", err)
		}
	}()
	cctx, cancel := cri.Ctx(ctx)
	defer cancel()
	if _, err := w.m.rt.Runtime.UpdateContainerResources(cctx, &runtimeapi.UpdateContainerResourcesRequest{ContainerId: cur.Id, Linux: res}); err != nil {
		// Tried again at the next sync; the status keeps saying what is applied.
		w.m.log.Warn("Resizing a container failed; will retry", "pod", pod.Namespace+"/"+pod.Name, "container", c.Name, "error", err)
		if !w.reported["ResizeError/"+c.Name] {
			w.reported["ResizeError/"+c.Name] = true
			w.m.event(pod, corev1.EventTypeWarning, "ResizeError", fmt.Sprintf("resize container %s: %v", c.Name, err))
		}
		return false
	}
	delete(w.reported, "ResizeError/"+c.Name)
	w.resources[cur.Id] = appliedOf(c.Resources)
	w.m.log.Info("Resized a container in place", "pod", pod.Namespace+"/"+pod.Name, "container", c.Name)
	return false
}

// reportResources fills a container status's resources (what its running
// instance has) and allocatedResources (the requests granted to it).
func (w *worker) reportResources(cs *corev1.ContainerStatus, c *corev1.Container, cur *runtimeapi.ContainerStatus) {
	r := appliedOf(c.Resources)
	if cur != nil && cur.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
		r = w.applied(c, cur)
		cs.Resources = &r
	}
	cs.AllocatedResources = r.Requests
}

// pruneResources forgets instances the runtime no longer has.
func (w *worker) pruneResources(rp *runtimePod) {
	if len(w.resources) == 0 || rp == nil {
		return
	}
	live := make(map[string]bool, len(rp.containers))
	for _, c := range rp.containers {
		live[c.Id] = true
	}
	for id := range w.resources {
		if !live[id] {
			delete(w.resources, id)
		}
	}
}
