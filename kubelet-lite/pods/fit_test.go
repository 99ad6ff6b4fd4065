package pods

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

// admitted runs a pod's first sync on m, registered as the manager
// does, and returns its status.
func admitted(m *Manager, pod *corev1.Pod) *corev1.PodStatus { return syncedWorker(m, pod).lastStatus }

func syncedWorker(m *Manager, pod *corev1.Pod) *worker {
	w := newWorker(m, pod)
	m.mu.Lock()
	m.workers[pod.UID] = w
	m.mu.Unlock()
	w.sync(context.Background())
	return w
}

func requesting(uid, cpu, mem string) *corev1.Pod {
	req := corev1.ResourceList{}
	if cpu != "" {
		req[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		req[corev1.ResourceMemory] = resource.MustParse(mem)
	}
	return testPod(uid, nil, corev1.Container{Name: "main", Resources: corev1.ResourceRequirements{Requests: req}})
}

// TestResourceAdmission: pods are admitted while their requests, with
// those of the pods already running, fit allocatable (4 CPUs, 8 GiB);
// the next is Failed with upstream's reason and message; a finished pod
// gives its share back; a static pod is admitted regardless.
func TestResourceAdmission(t *testing.T) {
	m, _ := fakeNode(t)
	first := syncedWorker(m, requesting("a", "3", "1Gi"))
	if st := first.lastStatus; st.Phase == corev1.PodFailed {
		t.Fatalf("a pod that fits was rejected: %s", st.Message)
	}
	st := admitted(m, requesting("b", "1500m", ""))
	if st.Phase != corev1.PodFailed || st.Reason != "OutOfcpu" ||
		!strings.Contains(st.Message, "Node didn't have enough resource: cpu, requested: 1500, used: 3000, capacity: 4000") {
		t.Errorf("cpu over allocatable: phase %s reason %q message %q", st.Phase, st.Reason, st.Message)
	}
	if st := admitted(m, requesting("c", "", "9Gi")); st.Reason != "OutOfmemory" {
		t.Errorf("memory over allocatable: reason %q", st.Reason)
	}
	gpu := testPod("d", nil, corev1.Container{Name: "main", Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{"example.com/gpu": resource.MustParse("1")}, Limits: corev1.ResourceList{"example.com/gpu": resource.MustParse("1")}}})
	if st := admitted(m, gpu); st.Reason != "OutOfexample.com/gpu" {
		t.Errorf("an extended resource the node lacks: reason %q", st.Reason)
	}
	// A sidecar's requests count for the whole pod's life.
	side := requesting("e", "500m", "")
	side.Spec.InitContainers = []corev1.Container{{Name: "side", Image: "busybox:1", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("600m")}}}}
	if st := admitted(m, side); st.Reason != "OutOfcpu" || !strings.Contains(st.Message, "requested: 1100") {
		t.Errorf("sidecar requests: reason %q message %q", st.Reason, st.Message)
	}
	// Quantities whose int64 forms overflow are no way in.
	for _, huge := range []*corev1.Pod{requesting("h1", "1E", ""), requesting("h2", "", "8Ei")} {
		if st := admitted(m, huge); st.Phase != corev1.PodFailed || !strings.HasPrefix(st.Reason, "OutOf") {
			t.Errorf("a request of %v was admitted: %s %q", huge.Spec.Containers[0].Resources.Requests, st.Phase, st.Reason)
		}
	}
	static := requesting("f", "2", "")
	static.Annotations = map[string]string{AnnotationSource: staticSource}
	if st := admitted(m, static); st.Phase == corev1.PodFailed {
		t.Errorf("a static pod was rejected: %s", st.Message)
	}
	first.mu.Lock()
	first.published = &corev1.PodStatus{Phase: corev1.PodSucceeded}
	first.mu.Unlock()
	if st := admitted(m, requesting("g", "1500m", "")); st.Phase == corev1.PodFailed {
		t.Errorf("the CPU of a finished pod was not given back: %s", st.Message)
	}
}

func TestPodCountAdmission(t *testing.T) {
	m, _ := fakeNode(t)
	m.cfg.Allocatable = m.cfg.Allocatable.DeepCopy()
	m.cfg.Allocatable[corev1.ResourcePods] = resource.MustParse("2")
	admitted(m, requesting("a", "", ""))
	admitted(m, requesting("b", "", ""))
	if st := admitted(m, requesting("c", "", "")); st.Reason != "OutOfpods" || !strings.Contains(st.Message, "pods, requested: 1, used: 2, capacity: 2") {
		t.Errorf("third pod on a 2-pod node: reason %q message %q", st.Reason, st.Message)
	}
}

// TestNodeAdmission: a pod whose node selector or required affinity the
// Node does not match, or that does not tolerate a NoExecute taint, is
// refused; NoSchedule taints are the scheduler's business only.
func TestNodeAdmission(t *testing.T) {
	m, _ := fakeNode(t)
	node := &corev1.Node{}
	node.Name, node.Labels = "n", map[string]string{"zone": "a"}
	node.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoExecute}, {Key: "soft", Effect: corev1.TaintEffectNoSchedule}}
	m.cfg.Node = func() *corev1.Node { return node }
	tolerant := func(uid string) *corev1.Pod {
		p := requesting(uid, "", "")
		p.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}
		return p
	}
	wrongZone := tolerant("a")
	wrongZone.Spec.NodeSelector = map[string]string{"zone": "b"}
	if st := admitted(m, wrongZone); st.Reason != reasonNodeAffinity || !strings.Contains(st.Message, "didn't match Pod's node affinity/selector") {
		t.Errorf("node selector not matched: reason %q message %q", st.Reason, st.Message)
	}
	affinity := tolerant("b")
	affinity.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"c"}}}}}}}}
	if st := admitted(m, affinity); st.Reason != reasonNodeAffinity {
		t.Errorf("required affinity not matched: reason %q", st.Reason)
	}
	if st := admitted(m, requesting("c", "", "")); st.Reason != reasonTaintToleration || !strings.Contains(st.Message, "dedicated: db") {
		t.Errorf("untolerated NoExecute taint: reason %q message %q", st.Reason, st.Message)
	}
	right := tolerant("d")
	right.Spec.NodeSelector = map[string]string{"zone": "a"}
	if st := admitted(m, right); st.Phase == corev1.PodFailed {
		t.Errorf("a matching, tolerating pod was rejected: %s", st.Message)
	}
}
