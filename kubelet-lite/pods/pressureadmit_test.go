package pods

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// Under memory pressure a BestEffort pod is refused with upstream's
// reason and message unless it tolerates the memory-pressure taint; a
// Burstable one is admitted. Under disk pressure every pod but a
// critical one is refused.
func TestPressureAdmission(t *testing.T) {
	m, _ := fakeNode(t)
	conds := []corev1.NodeConditionType{corev1.NodeMemoryPressure}
	m.cfg.Pressure = func() []corev1.NodeConditionType { return conds }
	if st := admitted(m, requesting("be", "", "")); st.Reason != reasonEvicted || st.Message != "Pod was rejected: The node had condition: [MemoryPressure]. " {
		t.Errorf("BestEffort under memory pressure: reason %q message %q", st.Reason, st.Message)
	}
	tolerant := requesting("tol", "", "")
	tolerant.Spec.Tolerations = []corev1.Toleration{{Key: corev1.TaintNodeMemoryPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
	if st := admitted(m, tolerant); st.Phase == corev1.PodFailed {
		t.Errorf("a BestEffort pod tolerating memory pressure was refused: %s", st.Message)
	}
	if st := admitted(m, requesting("bu", "10m", "")); st.Phase == corev1.PodFailed {
		t.Errorf("a Burstable pod was refused under memory pressure: %s", st.Message)
	}
	conds = []corev1.NodeConditionType{corev1.NodeDiskPressure, corev1.NodeMemoryPressure}
	if st := admitted(m, requesting("bu2", "10m", "")); st.Reason != reasonEvicted || !strings.Contains(st.Message, "[DiskPressure MemoryPressure]") {
		t.Errorf("Burstable under disk pressure: reason %q message %q", st.Reason, st.Message)
	}
	critical := requesting("crit", "", "")
	critical.Spec.Priority = ptr.To(int32(systemCriticalPriority))
	if st := admitted(m, critical); st.Phase == corev1.PodFailed {
		t.Errorf("a critical pod was refused under pressure: %s", st.Message)
	}
}
