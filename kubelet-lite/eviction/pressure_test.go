package eviction

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// MemoryPressure holds from the first look under a soft threshold (before
// its grace period evicts anything), and for the transition period after
// the signal recovers, then clears.
func TestPressureConditions(t *testing.T) {
	soft, _ := ParseFlag("memory.available<1Gi")
	avail := uint64(500 << 20)
	m := newTestManager(t, Config{Soft: soft, SoftGrace: map[Signal]time.Duration{MemoryAvailable: time.Hour}, PressureTransition: 30 * time.Second},
		&fakePods{}, &avail, nil)
	now := time.Unix(1000, 0)
	m.now = func() time.Time { return now }
	want := func(conds ...corev1.NodeConditionType) {
		t.Helper()
		if got := m.Conditions(); !slices.Equal(got, conds) {
			t.Fatalf("at %v: conditions %v, want %v", now, got, conds)
		}
	}
	want()
	m.synchronize(context.Background())
	want(corev1.NodeMemoryPressure)
	avail = 4 << 30 // recovered
	now = now.Add(29 * time.Second)
	m.synchronize(context.Background())
	want(corev1.NodeMemoryPressure)
	now = now.Add(time.Second)
	m.synchronize(context.Background())
	want()
}
