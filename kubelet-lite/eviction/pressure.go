package eviction

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// conditionOf is the node condition a signal's thresholds drive.
func conditionOf(sig Signal) corev1.NodeConditionType {
	switch sig {
	case MemoryAvailable:
		return corev1.NodeMemoryPressure
	case PIDAvailable:
		return corev1.NodePIDPressure
	}
	return corev1.NodeDiskPressure
}

// notePressure records which pressure conditions the signals meet now: a
// condition is met while any of its signals is under a threshold, hard
// or soft, whether or not a soft one has held for its grace period yet
// (upstream's thresholdsMet without the grace).
func (m *Manager) notePressure(obs map[Signal]observation) {
	now := m.now()
	met := map[corev1.NodeConditionType]bool{}
	for _, ts := range [][]Threshold{m.cfg.Hard, m.cfg.Soft} {
		for _, t := range ts {
			if o, ok := obs[t.Signal]; ok && o.capacity > 0 && o.available < t.Value(o.capacity) {
				met[conditionOf(t.Signal)] = true
			}
		}
	}
	m.pmu.Lock()
	defer m.pmu.Unlock()
	m.metNow = met
	for c := range met {
		m.lastMet[c] = now
	}
}

// Conditions are the pressure conditions the node is under: those met at
// the last look, and those met within the transition period
// (--eviction-pressure-transition-period), so a node hovering on a line
// does not flap between pressure and none. Sorted by name.
func (m *Manager) Conditions() []corev1.NodeConditionType {
	m.pmu.Lock()
	defer m.pmu.Unlock()
	now := m.now()
	var out []corev1.NodeConditionType
	for c, at := range m.lastMet {
		if m.metNow[c] || now.Sub(at) < m.cfg.PressureTransition {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}
