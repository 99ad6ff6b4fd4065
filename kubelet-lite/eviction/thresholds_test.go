package eviction

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	ts, err := ParseFlag(DefaultHard)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 5 {
		t.Fatalf("%d default thresholds, want 5", len(ts))
	}
	mem, ok := Find(ts, MemoryAvailable)
	if !ok || mem.Value(8<<30) != 100<<20 || mem.String() != "memory.available<100Mi" {
		t.Errorf("memory.available: %v", mem)
	}
	disk, _ := Find(ts, NodeFSAvailable)
	if disk.Value(1000) != 100 || disk.String() != "nodefs.available<10%" {
		t.Errorf("nodefs.available: %v = %d of 1000", disk, disk.Value(1000))
	}
	m, err := ParseMap(map[string]string{"memory.available": "1Gi", "pid.available": "2.5%"})
	if err != nil || len(m) != 2 {
		t.Fatalf("%v %v", m, err)
	}
	if pid, _ := Find(m, PIDAvailable); pid.Value(4000) != 100 {
		t.Errorf("pid.available 2.5%% of 4000 = %d", pid.Value(4000))
	}
	for in, want := range map[string]string{
		"memory.available>1Gi":            "want signal<value",
		"memory.available<lots":           "not a non-negative quantity",
		"memory.available<-1Gi":           "not a non-negative quantity",
		"nodefs.available<120%":           "percentage",
		"allocatableMemory.available<1Gi": "unknown or unsupported signal",
	} {
		if _, err := ParseFlag(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error with %q", in, err, want)
		}
	}
	if ts, err := ParseFlag(""); err != nil || len(ts) != 0 {
		t.Errorf("empty flag: %v %v", ts, err)
	}
}
