package pods

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
)

// admitUnderPressure refuses pods the way upstream's eviction manager
// does while the node is under pressure: under memory pressure alone, a
// BestEffort pod that does not tolerate the memory-pressure taint; under
// any other pressure, every pod. Critical pods are always admitted.
func (m *Manager) admitUnderPressure(pod *corev1.Pod) (string, error) {
	if m.cfg.Pressure == nil || IsCritical(pod) {
		return "", nil
	}
	conds := m.cfg.Pressure()
	if len(conds) == 0 {
		return "", nil
	}
	if len(conds) == 1 && conds[0] == corev1.NodeMemoryPressure {
		if QOSClass(pod) != corev1.PodQOSBestEffort {
			return "", nil
		}
		taint := &corev1.Taint{Key: corev1.TaintNodeMemoryPressure, Effect: corev1.TaintEffectNoSchedule}
		if slices.ContainsFunc(pod.Spec.Tolerations, func(t corev1.Toleration) bool { return t.ToleratesTaint(klog.Background(), taint, true) }) {
			return "", nil
		}
	}
	return reasonEvicted, fmt.Errorf("The node had condition: %v. ", conds)
}
