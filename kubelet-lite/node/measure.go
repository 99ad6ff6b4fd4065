package node

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
)

// Pressure thresholds, as the upstream kubelet's hard eviction defaults.
const (
	memAvailableMin  = 100 << 20 // memory.available < 100Mi
	diskAvailableMin = 0.10      // nodefs.available < 10%
	pidsAvailableMin = 0.05      // fewer than 5% of PIDs left
)

// Measurement is the machine as the node conditions see it.
type Measurement struct {
	MemTotal, MemAvailable uint64
	DiskTotal, DiskAvail   uint64
	PIDs, PIDMax           uint64
}

// Measure reads /proc and statfs(rootDir). Unreadable values stay 0,
// which reports no pressure rather than a false alarm.
func Measure(rootDir string) Measurement {
	var m Measurement
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 2 {
				continue
			}
			v, _ := strconv.ParseUint(fields[1], 10, 64)
			switch fields[0] {
			case "MemTotal:":
				m.MemTotal = v << 10
			case "MemAvailable:":
				m.MemAvailable = v << 10
			}
		}
		f.Close()
	}
	if rootDir == "" {
		rootDir = "/"
	}
	var st unix.Statfs_t
	if unix.Statfs(rootDir, &st) == nil {
		m.DiskTotal = st.Blocks * uint64(st.Bsize)
		m.DiskAvail = st.Bavail * uint64(st.Bsize)
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

// Conditions turns a measurement (and the runtime's state) into the four
// node conditions.
func (m Measurement) Conditions(runtimeErr error) []corev1.NodeCondition {
	memP := m.MemTotal > 0 && m.MemAvailable < memAvailableMin
	diskP := m.DiskTotal > 0 && float64(m.DiskAvail) < diskAvailableMin*float64(m.DiskTotal)
	pidP := m.PIDMax > 0 && float64(m.PIDMax-min(m.PIDs, m.PIDMax)) < pidsAvailableMin*float64(m.PIDMax)
	ready := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet-lite is posting ready status"}
	if runtimeErr != nil {
		ready.Status, ready.Reason, ready.Message = corev1.ConditionFalse, "KubeletNotReady", runtimeErr.Error()
	}
	return []corev1.NodeCondition{
		cond(corev1.NodeMemoryPressure, memP, "KubeletHasInsufficientMemory", "KubeletHasSufficientMemory", "memory available"),
		cond(corev1.NodeDiskPressure, diskP, "KubeletHasDiskPressure", "KubeletHasNoDiskPressure", "disk space available"),
		cond(corev1.NodePIDPressure, pidP, "KubeletHasInsufficientPID", "KubeletHasSufficientPID", "PIDs available"),
		ready,
	}
}
