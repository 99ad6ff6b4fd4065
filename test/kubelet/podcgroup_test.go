package kubelet

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hivelet/hivelet/test/harness"
)

// TestPrivilegedKubeletLitePodCgroup: a Guaranteed pod's own cgroup
// carries its CPU shares, CFS quota and memory limit (upstream's
// numbers), its container runs beneath it, and an in-place resize that
// raises the CPU limit raises the pod's quota first, so the container's
// new quota fits under it.
func TestPrivilegedKubeletLitePodCgroup(t *testing.T) {
	e := newEnv(t, true, "")
	q := func(cpu, mem string) corev1.ResourceList {
		return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}
	}
	e.runPod(t, "g", nil, corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{Requests: q("500m", "64Mi"), Limits: q("500m", "64Mi")},
		ResizePolicy: []corev1.ContainerResizePolicy{{ResourceName: corev1.ResourceCPU, RestartPolicy: corev1.NotRequired}}}}})
	p := e.waitPod(t, "g", "Running", running)
	file := func(hier, name string) string {
		dirs, _ := filepath.Glob(fmt.Sprintf("/sys/fs/cgroup/%s/%s/kubepods/pod%s", hier, e.cgroupName, p.UID))
		if len(dirs) == 0 {
			dirs, _ = filepath.Glob(fmt.Sprintf("/sys/fs/cgroup/%s/kubepods/pod%s", e.cgroupName, p.UID)) // unified
		}
		if len(dirs) == 0 {
			t.Fatalf("no pod cgroup for %s in %s", p.UID, hier)
		}
		b, err := os.ReadFile(filepath.Join(dirs[0], name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	v2 := false
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		v2 = true
	}
	quota := func() string {
		if v2 {
			return strings.Fields(file("", "cpu.max"))[0]
		}
		return file("cpu", "cpu.cfs_quota_us")
	}
	if v2 {
		if file("", "memory.max") != "67108864" || file("", "cpu.weight") != "20" {
			t.Errorf("pod cgroup: memory.max %s cpu.weight %s", file("", "memory.max"), file("", "cpu.weight"))
		}
	} else if file("memory", "memory.limit_in_bytes") != "67108864" || file("cpu", "cpu.shares") != "512" {
		t.Errorf("pod cgroup: memory limit %s shares %s", file("memory", "memory.limit_in_bytes"), file("cpu", "cpu.shares"))
	}
	if got := quota(); got != "50000" {
		t.Errorf("pod CFS quota %s, want 50000", got)
	}
	// The QoS tiers: besteffort the least share; kubepods memory limited
	// (--enforce-node-allocatable=pods, the default), not unlimited.
	qos := func(hier, rel, name string) string {
		b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", hier, e.cgroupName, rel, name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	if v2 {
		if w, mem := qos("", "kubepods/besteffort", "cpu.weight"), qos("", "kubepods", "memory.max"); w != "1" || mem == "max" {
			t.Errorf("QoS cgroups: besteffort cpu.weight %s, kubepods memory.max %s", w, mem)
		}
	} else if sh, mem := qos("cpu", "kubepods/besteffort", "cpu.shares"), qos("memory", "kubepods", "memory.limit_in_bytes"); sh != "2" || len(mem) > 15 {
		t.Errorf("QoS cgroups: besteffort cpu.shares %s, kubepods memory limit %s", sh, mem)
	}

	p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: q("1", "64Mi"), Limits: q("1", "64Mi")}
	if _, err := e.client.CoreV1().Pods(e.ns).UpdateResize(e.ctx, "g", p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(30 * time.Second); quota() != "100000"; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("pod quota %s after the resize to 1 CPU\n%s", quota(), harness.Tail(e.kubelet.Log(), 2000))
		}
	}
	e.waitPod(t, "g", "resized in place", func(p *corev1.Pod) bool {
		if len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].Resources == nil {
			return false
		}
		lim := p.Status.ContainerStatuses[0].Resources.Limits[corev1.ResourceCPU]
		return lim.MilliValue() == 1000 && p.Status.ContainerStatuses[0].RestartCount == 0
	})
}
