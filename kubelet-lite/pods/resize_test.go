package pods

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func requirements(req, lim corev1.ResourceList) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{Requests: req, Limits: lim}
}

// statusResources is what the last status says container main has.
func statusResources(t *testing.T, w *worker) (corev1.ResourceRequirements, corev1.ResourceList) {
	t.Helper()
	cs := w.lastStatus.ContainerStatuses[0]
	if cs.Resources == nil {
		t.Fatal("a running container's status has no resources")
	}
	return *cs.Resources, cs.AllocatedResources
}

func TestWorkerResizesInPlace(t *testing.T) {
	rt, pod, w, first := runningMain(t, "resize", corev1.Container{Name: "main", Resources: requirements(res("100m", "20Mi"), nil)})
	ctx := context.Background()
	if got, alloc := statusResources(t, w); !got.Requests.Cpu().Equal(resource.MustParse("100m")) || got.Limits != nil || !alloc.Memory().Equal(resource.MustParse("20Mi")) {
		t.Errorf("before the resize: resources %v, allocated %v", got, alloc)
	}
	if rt.Updated(first) != nil {
		t.Error("a container whose resources did not change was updated")
	}

	// More CPU and a memory limit: applied to the running container.
	resized := pod.DeepCopy()
	resized.Generation = 2
	resized.Spec.Containers[0].Resources = requirements(res("0.2", "20Mi"), res("", "50Mi"))
	w.update(resized)
	w.sync(ctx)
	if cs := rt.Containers(string(pod.UID))["main"]; len(cs) != 1 || cs[0].Id != first || cs[0].State != running {
		t.Fatalf("a resize without a restart policy replaced the container: %v", state(rt, pod))
	}
	u := rt.Updated(first)
	if u == nil || u.CpuShares != 204 || u.MemoryLimitInBytes != 50<<20 || u.CpuQuota != -1 {
		t.Fatalf("UpdateContainerResources got %+v, want 204 shares, 50 MiB and no CPU quota", u)
	}
	got, alloc := statusResources(t, w)
	if !got.Requests.Cpu().Equal(resource.MustParse("200m")) || !got.Limits.Memory().Equal(resource.MustParse("50Mi")) || !alloc.Cpu().Equal(resource.MustParse("200m")) {
		t.Errorf("after the resize: resources %v, allocated %v", got, alloc)
	}
	if w.lastStatus.ObservedGeneration != 2 || w.lastStatus.ContainerStatuses[0].RestartCount != 0 {
		t.Errorf("observedGeneration %d, restarts %d; want 2 and 0", w.lastStatus.ObservedGeneration, w.lastStatus.ContainerStatuses[0].RestartCount)
	}
	// Equal quantities written differently are no change.
	same := resized.DeepCopy()
	same.Spec.Containers[0].Resources = requirements(res("200m", "20971520"), res("", "52428800"))
	w.update(same)
	rt.RT.Lock()
	rt.RT.Called = nil
	rt.RT.Unlock()
	w.sync(ctx)
	rt.RT.Lock()
	for _, c := range rt.RT.Called {
		if c == "UpdateContainerResources" {
			t.Error("equal quantities were applied again")
		}
	}
	rt.RT.Unlock()

	// Memory with resizePolicy RestartContainer: a new instance takes it.
	restart := same.DeepCopy()
	restart.Spec.Containers[0].ResizePolicy = []corev1.ContainerResizePolicy{{ResourceName: corev1.ResourceMemory, RestartPolicy: corev1.RestartContainer}}
	// The policy is part of the spec hash only through resources being
	// left out: change memory alone.
	restart.Spec.Containers[0].Resources = requirements(res("200m", "30Mi"), res("", "60Mi"))
	w.update(restart)
	w.sync(ctx)
	cs := rt.Containers(string(pod.UID))["main"]
	if len(cs) != 2 || cs[0].Id != first || cs[0].State != exited || cs[1].State != running {
		t.Fatalf("a memory resize with RestartContainer: %v", state(rt, pod))
	}
	if got, _ := statusResources(t, w); !got.Limits.Memory().Equal(resource.MustParse("60Mi")) || w.lastStatus.ContainerStatuses[0].RestartCount != 1 {
		t.Errorf("after the restart: resources %v, restarts %d", got, w.lastStatus.ContainerStatuses[0].RestartCount)
	}
}

func TestResizeChangesCompareQuantities(t *testing.T) {
	have := requirements(res("1", "1Gi"), res("2", ""))
	for _, tc := range []struct {
		want     corev1.ResourceRequirements
		cpu, mem bool
	}{
		{requirements(res("1000m", "1024Mi"), res("2000m", "")), false, false},
		{requirements(res("1", "1Gi"), nil), true, false},             // CPU limit taken away
		{requirements(res("1", "1Gi"), res("2", "2Gi")), false, true}, // memory limit added
		{requirements(res("", "1Gi"), res("2", "")), true, false},     // CPU request taken away
		{requirements(res("3", "512Mi"), res("2", "")), true, true},   // both
	} {
		if cpu, mem := resizeChanges(have, tc.want); cpu != tc.cpu || mem != tc.mem {
			t.Errorf("resizeChanges(%v) = cpu %v mem %v, want %v %v", tc.want, cpu, mem, tc.cpu, tc.mem)
		}
	}
}
