package node

import (
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/hivelet/hivelet/kubelet-lite/eviction"
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
	healthy := Measurement{MemTotal: 8 << 30, MemAvailable: 4 << 30, DiskTotal: 100, DiskAvail: 50, InodesTotal: 100, InodesFree: 90, PIDs: 100, PIDMax: 4096}
	hard, err := eviction.ParseFlag(eviction.DefaultHard + ",pid.available<10%")
	if err != nil {
		t.Fatal(err)
	}
	cs := healthy.Conditions(nil, hard)
	for _, typ := range []corev1.NodeConditionType{corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure} {
		if find(cs, typ) != corev1.ConditionFalse {
			t.Errorf("healthy machine: %s is %s", typ, find(cs, typ))
		}
	}
	if find(cs, corev1.NodeReady) != corev1.ConditionTrue {
		t.Error("healthy machine not Ready")
	}
	sick := Measurement{MemTotal: 8 << 30, MemAvailable: 50 << 20, DiskTotal: 100, DiskAvail: 5, InodesTotal: 100, InodesFree: 90, PIDs: 3900, PIDMax: 4096}
	cs = sick.Conditions(errors.New("runtime down"), hard)
	for _, typ := range []corev1.NodeConditionType{corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure} {
		if find(cs, typ) != corev1.ConditionTrue {
			t.Errorf("starved machine: %s is %s", typ, find(cs, typ))
		}
	}
	if find(cs, corev1.NodeReady) != corev1.ConditionFalse {
		t.Error("Ready with the runtime down")
	}
	// Inodes alone make disk pressure; no thresholds, no memory or disk
	// pressure (PIDs keep their 5 % rule).
	inodes := healthy
	inodes.InodesFree = 2
	if find(inodes.Conditions(nil, hard), corev1.NodeDiskPressure) != corev1.ConditionTrue {
		t.Error("no DiskPressure with 2% of inodes free")
	}
	for _, typ := range []corev1.NodeConditionType{corev1.NodeMemoryPressure, corev1.NodeDiskPressure} {
		if find(sick.Conditions(nil, nil), typ) != corev1.ConditionFalse {
			t.Errorf("%s without thresholds", typ)
		}
	}
	if m := Measure(t.TempDir()); m.MemTotal == 0 || m.DiskTotal == 0 || m.PIDMax == 0 {
		t.Errorf("Measure read nothing: %+v", m)
	}
}
