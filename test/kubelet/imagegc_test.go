package kubelet

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/hivelet/hivelet/test/containerd"
	"github.com/hivelet/hivelet/test/harness"
)

// TestPrivilegedKubeletLiteImageGC: with the image file system over a 1 %
// high threshold (as it always is), image GC removes the image nothing
// uses once it is older than the minimum age, and keeps the one a pod
// runs and the runtime's sandbox image.
func TestPrivilegedKubeletLiteImageGC(t *testing.T) {
	e := prepareNode(t, true, "", "")
	const unused = "hivelet.test/unused:1"
	e.rt.Import(t, unused, []string{"sh", "-c", "exit 0"}) // another config: another image, not a tag of busybox
	e.args = append(e.args, "--image-gc-high-threshold", "1", "--image-gc-low-threshold", "0",
		"--minimum-image-ttl-duration", "10s", "--image-gc-period", "1s")
	e.start()
	e.runPod(t, "user", nil, corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}})
	e.waitPod(t, "user", "Running", running)
	for end := time.Now().Add(40 * time.Second); slices.Contains(e.rt.ImageRefs(t), unused); time.Sleep(500 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%s not collected within 40 s\n%s", unused, harness.Tail(e.kubelet.Log(), 3000))
		}
	}
	refs := e.rt.ImageRefs(t)
	for _, keep := range []string{containerd.BusyboxRef, containerd.PauseRef} {
		if !slices.Contains(refs, keep) {
			t.Errorf("%s was collected: images left %v", keep, refs)
		}
	}
	if !strings.Contains(e.kubelet.Log(), "Removed an unused image") {
		t.Error("the removal was not logged")
	}
	if p := e.pod("user"); p == nil || p.Status.Phase != corev1.PodRunning {
		t.Error("the pod using the kept image stopped running")
	}
}
