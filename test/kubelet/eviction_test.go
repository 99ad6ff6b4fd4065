package kubelet

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/hivelet/hivelet/kubelet-lite/eviction"
)

// TestPrivilegedKubeletLiteEviction runs a real memory hog next to a
// Guaranteed and a Burstable pod, with memory.available's hard threshold
// set 700 MiB under what is available now (so the test is safe on any
// machine): the hog, BestEffort, takes 1.2 GiB and is evicted, Failed
// with reason Evicted, the message naming it, a DisruptionTarget
// condition and an event; the other two keep running.
func TestPrivilegedKubeletLiteEviction(t *testing.T) {
	mem, err := eviction.ReadMemory()
	if err != nil {
		t.Fatal(err)
	}
	avail := mem.Available() >> 20
	if avail < 3<<10 {
		t.Skipf("only %d MiB available: the hog would crowd the machine", avail)
	}
	threshold := avail - 700
	e := prepareNode(t, true, "", "")
	e.args = append(e.args, "--eviction-hard", fmt.Sprintf("memory.available<%dMi", threshold))
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
	e.runPod(t, "hog", nil, corev1.PodSpec{Containers: []corev1.Container{{Name: "hog",
		Command: []string{"sh", "-c", "dd if=/dev/zero bs=1200M count=1 | sleep 3600"}}}})
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
	// The hog's memory is back: the others are not touched.
	time.Sleep(3 * time.Second)
	for _, name := range []string{"guaranteed", "burstable"} {
		if q := e.pod(name); q == nil || q.Status.Phase != corev1.PodRunning {
			t.Errorf("%s was not left running: %+v", name, q.Status)
		}
	}
}
