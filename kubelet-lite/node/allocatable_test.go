package node

import (
	"runtime"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/hivelet/hivelet/kubelet-lite/eviction"
)

// TestAllocatable: capacity less system-reserved, kube-reserved and the
// hard eviction thresholds on memory and nodefs, as upstream's formula;
// never below zero.
func TestAllocatable(t *testing.T) {
	m := Measurement{MemTotal: 8 << 30, DiskTotal: 100 << 30}
	sys, err := ParseReserved("--system-reserved", map[string]string{"cpu": "500m", "memory": "1Gi", "pid": "1000"})
	if err != nil {
		t.Fatal(err)
	}
	kube, err := ParseReserved("--kube-reserved", map[string]string{"memory": "512Mi", "ephemeral-storage": "10Gi"})
	if err != nil {
		t.Fatal(err)
	}
	hard, _ := eviction.ParseFlag(eviction.DefaultHard)
	capacity, alloc := m.Resources(Reserved{System: sys, Kube: kube, Hard: hard}, 0)
	want := map[corev1.ResourceName]int64{
		corev1.ResourceCPU:              int64(runtime.NumCPU())*1000 - 500,
		corev1.ResourceMemory:           8<<30 - 1<<30 - 512<<20 - 100<<20,
		corev1.ResourceEphemeralStorage: 100<<30 - 10<<30 - 10<<30,
		corev1.ResourcePods:             110,
	}
	for name, v := range want {
		q := alloc[name]
		got := q.Value()
		if name == corev1.ResourceCPU {
			got = q.MilliValue()
		}
		if got != v {
			t.Errorf("allocatable %s = %d, want %d", name, got, v)
		}
	}
	if c := capacity[corev1.ResourceMemory]; c.Value() != 8<<30 {
		t.Errorf("capacity memory %v", c.String())
	}
	huge, _ := ParseReserved("--system-reserved", map[string]string{"memory": "64Gi"})
	_, alloc = m.Resources(Reserved{System: huge}, 10)
	if q := alloc[corev1.ResourceMemory]; q.Sign() != 0 {
		t.Errorf("allocatable memory %s with more reserved than there is, want 0", q.String())
	}
	if q := alloc[corev1.ResourcePods]; q.Value() != 10 {
		t.Errorf("pods %s, want --max-pods 10", q.String())
	}
	for _, bad := range []map[string]string{{"gpu": "1"}, {"memory": "-1Gi"}, {"cpu": "lots"}} {
		if _, err := ParseReserved("--kube-reserved", bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
