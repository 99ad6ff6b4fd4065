package kubelet

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hivelet/hivelet/kubelet-lite/eviction"
	"github.com/hivelet/hivelet/test/harness"
)

// The eviction tests' hog takes hogMiB with memory.available's threshold
// marginMiB under what is available when the node starts: safe on any
// machine with a few GiB free, and the margin wide enough that page
// cache and builds next to the test do not cross the line by themselves.
const (
	hogMiB    = 2560
	marginMiB = 1536
)

// hogCommand holds hogMiB of anonymous memory: dd fills its buffer, then
// blocks writing it to a pipe nobody reads. It ends at SIGTERM (a shell
// as PID 1 would ignore it), so what is timed is the kubelet's reaction,
// not the grace period.
var hogCommand = []string{"sh", "-c", fmt.Sprintf("trap 'kill 0; exit 0' TERM; dd if=/dev/zero bs=%dM count=1 | sleep 3600 & wait", hogMiB)}

// memoryLine is the threshold for a node started now, in bytes; the test
// is skipped where the hog would crowd the machine.
func memoryLine(t testing.TB) uint64 {
	mem, err := eviction.ReadMemory()
	if err != nil {
		t.Fatal(err)
	}
	if mem.Available()>>20 < 2*hogMiB {
		t.Skipf("only %d MiB available: a %d MiB hog would crowd the machine", mem.Available()>>20, hogMiB)
	}
	return mem.Available() - marginMiB<<20
}

// TestPrivilegedKubeletLiteEviction runs a real memory hog next to a
// Guaranteed and a Burstable pod, with memory.available's hard threshold
// set under what is available now (memoryLine): the hog, BestEffort, is
// evicted, Failed
// with reason Evicted, the message naming it, a DisruptionTarget
// condition and an event; the other two keep running.
func TestPrivilegedKubeletLiteEviction(t *testing.T) {
	threshold := memoryLine(t) >> 20
	e := prepareNode(t, true, "", "")
	e.args = append(e.args, "--eviction-hard", fmt.Sprintf("memory.available<%dMi", threshold), "--eviction-pressure-transition-period", "20s")
	e.start()

	res := func(req, lim string) corev1.ResourceRequirements {
		r := corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse(req)}}
		if lim != "" {
			r.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse(lim)}
		}
		return r
	}
	e.runPod(t, "guaranteed", nil, corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: res("64Mi", "64Mi")}}})
	e.runPod(t, "burstable", nil, corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: res("32Mi", "")}}})
	e.waitPod(t, "guaranteed", "Running", running)
	e.waitPod(t, "burstable", "Running", running)
	start := time.Now()
	e.runPod(t, "hog", nil, corev1.PodSpec{Containers: []corev1.Container{{Name: "hog", Command: hogCommand}}})
	p := e.waitPod(t, "hog", "Evicted", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	t.Logf("hog evicted %v after it was created (threshold memory.available<%dMi)", time.Since(start).Round(time.Millisecond), threshold)
	if p.Status.Reason != "Evicted" || !strings.Contains(p.Status.Message, "The node was low on resource: memory.") ||
		!strings.Contains(p.Status.Message, "Container hog was using") {
		t.Errorf("hog status: reason %q message %q", p.Status.Reason, p.Status.Message)
	}
	disrupted := false
	for _, c := range p.Status.Conditions {
		disrupted = disrupted || c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue && c.Reason == "TerminationByKubelet"
	}
	if !disrupted {
		t.Errorf("no DisruptionTarget condition: %+v", p.Status.Conditions)
	}
	if !e.hasEvent("hog", "Evicted", "low on resource: memory") {
		t.Error("no Evicted event")
	}
	// The pressure holds for the transition period after the hog is
	// gone: a BestEffort pod is refused meanwhile, as upstream refuses it.
	e.runPod(t, "late", nil, corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}})
	late := e.waitPod(t, "late", "refused under memory pressure", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if late.Status.Reason != "Evicted" || !strings.Contains(late.Status.Message, "The node had condition: [MemoryPressure]") {
		t.Errorf("late pod: reason %q message %q", late.Status.Reason, late.Status.Message)
	}
	memoryPressure := func() corev1.ConditionStatus {
		n, err := e.client.CoreV1().Nodes().Get(e.ctx, e.node, metav1.GetOptions{})
		if err != nil {
			return ""
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeMemoryPressure {
				return c.Status
			}
		}
		return ""
	}
	harness.WaitFor(t, "MemoryPressure on the Node", func() bool { return memoryPressure() == corev1.ConditionTrue })
	for end := time.Now().Add(45 * time.Second); memoryPressure() != corev1.ConditionFalse; time.Sleep(time.Second) {
		if time.Now().After(end) {
			t.Fatal("MemoryPressure still set 45 s after the hog went (transition period 20 s)")
		}
	}
	// The hog's memory is back: the others are not touched.
	time.Sleep(3 * time.Second)
	for _, name := range []string{"guaranteed", "burstable"} {
		if q := e.pod(name); q == nil || q.Status.Phase != corev1.PodRunning {
			t.Errorf("%s was not left running: %+v", name, q.Status)
		}
	}
}

// TestPrivilegedKubeletLiteDiskEviction: with nodefs.available's hard
// threshold 1 GiB under what the kubelet's file system has free, a
// BestEffort pod writing 2 GiB into its emptyDir is evicted for
// ephemeral-storage (no unused image to remove first), its emptyDir is
// removed so the space comes back, and a pod within its request keeps
// running.
func TestPrivilegedKubeletLiteDiskEviction(t *testing.T) {
	e := prepareNode(t, true, "", "")
	var st unix.Statfs_t
	if err := unix.Statfs(e.rootDir(), &st); err != nil {
		t.Fatal(err)
	}
	avail := st.Bavail * uint64(st.Bsize) >> 20
	if avail < 8<<10 {
		t.Skipf("only %d MiB free: the test writes 2 GiB", avail)
	}
	e.args = append(e.args, "--eviction-hard", fmt.Sprintf("nodefs.available<%dMi", avail-1024))
	e.start()
	e.runPod(t, "steady", nil, corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceEphemeralStorage: resource.MustParse("100Mi")}}}}})
	e.waitPod(t, "steady", "Running", running)
	e.runPod(t, "writer", nil, corev1.PodSpec{Volumes: []corev1.Volume{emptyDir("data")}, Containers: []corev1.Container{{Name: "w",
		Command:      []string{"sh", "-c", "dd if=/dev/zero of=/data/fill bs=1M count=2048; sleep 3600"},
		VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}}})
	p := e.waitPod(t, "writer", "Evicted", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if p.Status.Reason != "Evicted" || !strings.Contains(p.Status.Message, "The node was low on resource: ephemeral-storage.") {
		t.Errorf("writer status: reason %q message %q", p.Status.Reason, p.Status.Message)
	}
	vol := filepath.Join(e.rootDir(), "pods", string(p.UID), "volumes", "data")
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if _, err := os.Stat(vol); os.IsNotExist(err) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the evicted pod's emptyDir %s is still there", vol)
		}
	}
	time.Sleep(3 * time.Second)
	if q := e.pod("steady"); q == nil || q.Status.Phase != corev1.PodRunning {
		t.Errorf("steady was not left running: %+v", q.Status)
	}
}
