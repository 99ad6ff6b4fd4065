package kubelet

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hivelet/hivelet/test/containerd"
)

// TestPrivilegedKubeletLiteAdmission: the Node reports allocatable as
// capacity less --system-reserved and the hard eviction threshold, and
// pods bound to the node by hand (no scheduler checked them) that do not
// fit it are Failed with upstream's reasons, while one that fits runs;
// its image shows in the Node's status.images.
func TestPrivilegedKubeletLiteAdmission(t *testing.T) {
	e := prepareNode(t, true, "", "")
	e.args = append(e.args, "--system-reserved", "memory=256Mi,cpu=100m", "--eviction-hard", "memory.available<100Mi")
	e.start()
	var node *corev1.Node
	for i := 0; i < 100; i++ {
		n, err := e.client.CoreV1().Nodes().Get(e.ctx, e.node, metav1.GetOptions{})
		if err == nil && len(n.Status.Allocatable) > 0 {
			node = n
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if node == nil {
		t.Fatal("the node never reported allocatable")
	}
	capMem, allocMem := node.Status.Capacity[corev1.ResourceMemory], node.Status.Allocatable[corev1.ResourceMemory]
	if want := capMem.Value() - 256<<20 - 100<<20; allocMem.Value() != want {
		t.Errorf("allocatable memory %d, want capacity %d - 256Mi - 100Mi = %d", allocMem.Value(), capMem.Value(), want)
	}
	capCPU, allocCPU := node.Status.Capacity[corev1.ResourceCPU], node.Status.Allocatable[corev1.ResourceCPU]
	if allocCPU.MilliValue() != capCPU.MilliValue()-100 {
		t.Errorf("allocatable cpu %s of %s, want 100m less", allocCPU.String(), capCPU.String())
	}

	requests := func(cpu string) corev1.ResourceRequirements {
		return corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}
	}
	e.runPod(t, "too-big", nil, corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: requests("1000")}}})
	e.runPod(t, "elsewhere", nil, corev1.PodSpec{NodeSelector: map[string]string{"topology.example.com/zone": "nowhere"},
		Containers: []corev1.Container{{Name: "c"}}})
	e.runPod(t, "fits", nil, corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: requests("10m")}}})
	rejected := func(reason, text string) func(*corev1.Pod) bool {
		return func(p *corev1.Pod) bool {
			return p.Status.Phase == corev1.PodFailed && p.Status.Reason == reason && strings.Contains(p.Status.Message, text)
		}
	}
	e.waitPod(t, "too-big", "Failed: OutOfcpu", rejected("OutOfcpu", "Node didn't have enough resource: cpu, requested: 1000000"))
	e.waitPod(t, "elsewhere", "Failed: NodeAffinity", rejected("NodeAffinity", "didn't match Pod's node affinity/selector"))
	e.waitPod(t, "fits", "Running", running)
	if !e.hasEvent("too-big", "OutOfcpu", "Node didn't have enough resource") {
		t.Error("no OutOfcpu event for the rejected pod")
	}
	// The image the pod runs is in status.images, for the scheduler's
	// image locality, at the next status update.
	hasBusybox := func() bool {
		n, err := e.client.CoreV1().Nodes().Get(e.ctx, e.node, metav1.GetOptions{})
		for _, img := range n.Status.Images {
			if err == nil && slices.Contains(img.Names, containerd.BusyboxRef) && img.SizeBytes > 0 {
				return true
			}
		}
		return false
	}
	for end := time.Now().Add(25 * time.Second); !hasBusybox(); time.Sleep(time.Second) {
		if time.Now().After(end) {
			t.Fatalf("%s not in the Node's status.images", containerd.BusyboxRef)
		}
	}
}
