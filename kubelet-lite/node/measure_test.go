package node

import (
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestConditions(t *testing.T) {
	find := func(cs []corev1.NodeCondition, typ corev1.NodeConditionType) corev1.ConditionStatus {
		for _, c := range cs {
			if c.Type == typ {
				return c.Status
			}
		}
		return ""
	}
	healthy := Measurement{MemTotal: 8 << 30, MemAvailable: 4 << 30, DiskTotal: 100, DiskAvail: 50, PIDs: 100, PIDMax: 4096}
	cs := healthy.Conditions(nil)
	for _, typ := range []corev1.NodeConditionType{corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure} {
		if find(cs, typ) != corev1.ConditionFalse {
			t.Errorf("healthy machine: %s is %s", typ, find(cs, typ))
		}
	}
	if find(cs, corev1.NodeReady) != corev1.ConditionTrue {
		t.Error("healthy machine not Ready")
	}
	sick := Measurement{MemTotal: 8 << 30, MemAvailable: 50 << 20, DiskTotal: 100, DiskAvail: 5, PIDs: 4000, PIDMax: 4096}
	cs = sick.Conditions(errors.New("runtime down"))
	for _, typ := range []corev1.NodeConditionType{corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure} {
		if find(cs, typ) != corev1.ConditionTrue {
			t.Errorf("starved machine: %s is %s", typ, find(cs, typ))
		}
	}
	if find(cs, corev1.NodeReady) != corev1.ConditionFalse {
		t.Error("Ready with the runtime down")
	}
	if m := Measure(t.TempDir()); m.MemTotal == 0 || m.DiskTotal == 0 || m.PIDMax == 0 {
		t.Errorf("Measure read nothing: %+v", m)
	}
}
