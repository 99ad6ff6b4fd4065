package node

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"

	"github.com/hivelet/hivelet/kubelet-lite/eviction"
)

// pidsAvailableMin is PIDPressure's threshold when no pid.available one
// is set: fewer than 5 % of PIDs left.
const pidsAvailableMin = 0.05

// Measurement is the machine as the node conditions see it.
type Measurement struct {
	MemTotal, MemAvailable  uint64 // memory.available, the kubelet's formula
	DiskTotal, DiskAvail    uint64
	InodesTotal, InodesFree uint64
	PIDs, PIDMax            uint64
}

// Measure reads /proc and statfs(rootDir). Unreadable values stay 0,
// which reports no pressure rather than a false alarm.
func Measure(rootDir string) Measurement {
	var m Measurement
	if mem, err := eviction.ReadMemory(); err == nil {
		m.MemTotal, m.MemAvailable = mem.Total, mem.Available()
	}
	if rootDir == "" {
		rootDir = "/"
	}
	var st unix.Statfs_t
	if unix.Statfs(rootDir, &st) == nil {
		m.DiskTotal = st.Blocks * uint64(st.Bsize)
		m.DiskAvail = st.Bavail * uint64(st.Bsize)
		m.InodesTotal, m.InodesFree = st.Files, st.Ffree
	}
	if b, err := os.ReadFile("/proc/sys/kernel/pid_max"); err == nil {
		m.PIDMax, _ = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	}
	if ents, err := os.ReadDir("/proc"); err == nil {
		for _, e := range ents {
			if _, err := strconv.Atoi(e.Name()); err == nil {
				m.PIDs++
			}
		}
	}
	return m
}

func cond(t corev1.NodeConditionType, pressure bool, yesReason, noReason, msg string) corev1.NodeCondition {
	c := corev1.NodeCondition{Type: t, Status: corev1.ConditionFalse, Reason: noReason, Message: "kubelet-lite has sufficient " + msg}
	if pressure {
		c.Status, c.Reason, c.Message = corev1.ConditionTrue, yesReason, "kubelet-lite: low "+msg
	}
	return c
}

// below says whether the signal's value is under any of its thresholds
// (false without one, or when capacity could not be read).
func below(ts []eviction.Threshold, sig eviction.Signal, value, capacity uint64) bool {
	for _, t := range ts {
		if t.Signal == sig && capacity > 0 && int64(value) < t.Value(int64(capacity)) {
			return true
		}
	}
	return false
}

// Conditions turns a measurement (and the runtime's state) into the four
// node conditions: a pressure condition is true while its signal is
// under one of its eviction thresholds (hard or soft, as upstream). The root dir's file system serves
// as both nodefs and imagefs.
func (m Measurement) Conditions(runtimeErr error, hard []eviction.Threshold) []corev1.NodeCondition {
	memP := below(hard, eviction.MemoryAvailable, m.MemAvailable, m.MemTotal)
	diskP := below(hard, eviction.NodeFSAvailable, m.DiskAvail, m.DiskTotal) || below(hard, eviction.ImageFSAvailable, m.DiskAvail, m.DiskTotal) ||
		below(hard, eviction.NodeFSInodesFree, m.InodesFree, m.InodesTotal) || below(hard, eviction.ImageFSInodesFree, m.InodesFree, m.InodesTotal)
	pidsFree := m.PIDMax - min(m.PIDs, m.PIDMax)
	pidP := below(hard, eviction.PIDAvailable, pidsFree, m.PIDMax)
	if _, ok := eviction.Find(hard, eviction.PIDAvailable); !ok {
		pidP = m.PIDMax > 0 && float64(pidsFree) < pidsAvailableMin*float64(m.PIDMax)
	}
	ready := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet-lite is posting ready status"}
	if runtimeErr != nil {
		ready.Status, ready.Reason, ready.Message = corev1.ConditionFalse, "KubeletNotReady", runtimeErr.Error()
	}
	return []corev1.NodeCondition{
		cond(corev1.NodeMemoryPressure, memP, pressureReasons[corev1.NodeMemoryPressure], "KubeletHasSufficientMemory", pressureWhat[corev1.NodeMemoryPressure]),
		cond(corev1.NodeDiskPressure, diskP, pressureReasons[corev1.NodeDiskPressure], "KubeletHasNoDiskPressure", pressureWhat[corev1.NodeDiskPressure]),
		cond(corev1.NodePIDPressure, pidP, pressureReasons[corev1.NodePIDPressure], "KubeletHasSufficientPID", pressureWhat[corev1.NodePIDPressure]),
		ready,
	}
}

// withPressure sets the pressure conditions the eviction manager reports
// (which hold for its transition period) on top of the status update's
// own look.
func withPressure(conds []corev1.NodeCondition, pressure func() []corev1.NodeConditionType) []corev1.NodeCondition {
	if pressure == nil {
		return conds
	}
	for _, t := range pressure() {
		for i := range conds {
			if conds[i].Type == t && conds[i].Status != corev1.ConditionTrue {
				yes := cond(t, true, pressureReasons[t], "", pressureWhat[t])
				conds[i] = yes
			}
		}
	}
	return conds
}

var (
	pressureReasons = map[corev1.NodeConditionType]string{corev1.NodeMemoryPressure: "KubeletHasInsufficientMemory",
		corev1.NodeDiskPressure: "KubeletHasDiskPressure", corev1.NodePIDPressure: "KubeletHasInsufficientPID"}
	pressureWhat = map[corev1.NodeConditionType]string{corev1.NodeMemoryPressure: "memory available",
		corev1.NodeDiskPressure: "disk space available", corev1.NodePIDPressure: "PIDs available"}
)
