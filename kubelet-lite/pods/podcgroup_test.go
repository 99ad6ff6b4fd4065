package pods

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
)

func withResources(uid string, cs ...corev1.ResourceRequirements) *corev1.Pod {
	p := &corev1.Pod{}
	p.UID = types.UID("u" + uid)
	for i, r := range cs {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: string(rune('a' + i)), Resources: r})
	}
	return p
}

func rr(reqCPU, reqMem, limCPU, limMem string) corev1.ResourceRequirements {
	list := func(cpu, mem string) corev1.ResourceList {
		l := corev1.ResourceList{}
		if cpu != "" {
			l[corev1.ResourceCPU] = resource.MustParse(cpu)
		}
		if mem != "" {
			l[corev1.ResourceMemory] = resource.MustParse(mem)
		}
		return l
	}
	return corev1.ResourceRequirements{Requests: list(reqCPU, reqMem), Limits: list(limCPU, limMem)}
}

// TestPodCgroupConfig: upstream's numbers: shares from the requests
// (2 for BestEffort), a quota and a memory limit only when every
// container has that limit.
func TestPodCgroupConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want podCgroupConfig
	}{
		{"best effort", withResources("1", rr("", "", "", "")), podCgroupConfig{2, noLimit, noLimit}},
		{"guaranteed, two containers", withResources("2", rr("500m", "64Mi", "500m", "64Mi"), rr("250m", "32Mi", "250m", "32Mi")),
			podCgroupConfig{768, 75000, 96 << 20}},
		{"one container unlimited", withResources("3", rr("100m", "", "200m", "64Mi"), rr("100m", "", "", "")), podCgroupConfig{204, noLimit, noLimit}},
		{"tiny quota", withResources("4", rr("1m", "", "1m", "")), podCgroupConfig{2, minQuota, noLimit}},
	} {
		if got := podCgroupConfigFor(tc.pod); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if sharesToWeight(2) != 1 || sharesToWeight(262144) != 10000 || sharesToWeight(1024) != 39 {
		t.Errorf("weights: %d %d %d", sharesToWeight(2), sharesToWeight(262144), sharesToWeight(1024))
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestApplyPodCgroup writes a Guaranteed pod's cgroup on a v1 layout
// (cpu,cpuacct joint) and a v2 one.
func TestApplyPodCgroup(t *testing.T) {
	pod := withResources("5", rr("500m", "64Mi", "500m", "64Mi"))
	old := cgroupMounts
	t.Cleanup(func() { cgroupMounts = old })

	cgroupMounts = t.TempDir()
	for _, d := range []string{"cpu,cpuacct", "memory"} {
		if err := os.Mkdir(filepath.Join(cgroupMounts, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	m, _ := fakeNode(t)
	m.cfg.CgroupRoot = "/r"
	if err := m.applyPodCgroup(pod); err != nil {
		t.Fatal(err)
	}
	cpu := filepath.Join(cgroupMounts, "cpu,cpuacct/r/kubepods/podu5")
	if read(t, cpu+"/cpu.shares") != "512" || read(t, cpu+"/cpu.cfs_quota_us") != "50000" || read(t, cpu+"/cpu.cfs_period_us") != "100000" {
		t.Errorf("v1 cpu files wrong")
	}
	if got := read(t, filepath.Join(cgroupMounts, "memory/r/kubepods/podu5/memory.limit_in_bytes")); got != "67108864" {
		t.Errorf("v1 memory limit %s", got)
	}

	cgroupMounts = t.TempDir()
	if err := os.WriteFile(filepath.Join(cgroupMounts, cgroupV2Probe), []byte("cpu memory"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.applyPodCgroup(pod); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cgroupMounts, "r/kubepods/podu5")
	if read(t, dir+"/cpu.weight") != "20" || read(t, dir+"/cpu.max") != "50000 100000" || read(t, dir+"/memory.max") != "67108864" {
		t.Errorf("v2 files: weight %s max %s memory %s", read(t, dir+"/cpu.weight"), read(t, dir+"/cpu.max"), read(t, dir+"/memory.max"))
	}
	if read(t, filepath.Join(cgroupMounts, "r/kubepods/cgroup.subtree_control")) != "+cpu +memory" {
		t.Error("controllers not enabled on the way down")
	}
}

// TestQOSCgroups: besteffort gets the least share, burstable the sum of
// its pods' requests (the starting one included), kubepods the node's
// CPU and its enforced memory limit.
func TestQOSCgroups(t *testing.T) {
	old := cgroupMounts
	t.Cleanup(func() { cgroupMounts = old })
	cgroupMounts = t.TempDir()
	for _, d := range []string{"cpu", "memory"} {
		if err := os.Mkdir(filepath.Join(cgroupMounts, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	m, _ := fakeNode(t)
	m.cfg.KubepodsLimits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("1Gi")}
	running := syncedWorker(m, testPod("six", nil, corev1.Container{Name: "main", Resources: rr("300m", "", "1", "")}))
	if running.lastStatus.Phase == corev1.PodFailed {
		t.Fatalf("rejected: %s", running.lastStatus.Message)
	}
	if err := m.applyQOSCgroups(withResources("7", rr("200m", "", "", ""))); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"cpu/kubepods/cpu.shares":                  "2048",
		"memory/kubepods/memory.limit_in_bytes":    "1073741824",
		"cpu/kubepods/burstable/cpu.shares":        "512",
		"cpu/kubepods/besteffort/cpu.shares":       "2",
		"cpu/kubepods/besteffort/cpu.cfs_quota_us": "-1",
	} {
		if got := read(t, filepath.Join(cgroupMounts, path)); got != want {
			t.Errorf("%s = %s, want %s", path, got, want)
		}
	}
}
