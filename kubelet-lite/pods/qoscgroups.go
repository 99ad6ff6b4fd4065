package pods

import (
	"errors"

	corev1 "k8s.io/api/core/v1"
	resourcehelper "k8s.io/component-helpers/resource"
)

// applyQOSCgroups sets the QoS tier cgroups as the upstream kubelet's QoS
// manager does: besteffort gets the least CPU share there is, burstable
// the sum of its pods' CPU requests (counting pod, about to start), and
// kubepods the node's allocatable CPU and, with
// --enforce-node-allocatable=pods, its memory limit: pods together never
// take what the node reserves for itself.
func (m *Manager) applyQOSCgroups(starting *corev1.Pod) error {
	n := m.naming()
	var burstable int64
	pods := m.Active()
	if starting != nil {
		pods = append(pods, starting)
	}
	seen := map[string]bool{}
	for _, p := range pods {
		if seen[string(p.UID)] || QOSClass(p) != corev1.PodQOSBurstable {
			continue
		}
		seen[string(p.UID)] = true
		q := resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{})[corev1.ResourceCPU]
		burstable += q.MilliValue()
	}
	top := podCgroupConfig{shares: maxShares, quota: noLimit, memoryLimit: noLimit}
	if q, ok := m.cfg.KubepodsLimits[corev1.ResourceCPU]; ok {
		top.shares = milliToShares(q.MilliValue())
	}
	if q, ok := m.cfg.KubepodsLimits[corev1.ResourceMemory]; ok {
		top.memoryLimit = q.Value()
	}
	return errors.Join(
		applyCgroup(n.dir([]string{"kubepods"}), top),
		applyCgroup(n.dir([]string{"kubepods", "burstable"}), podCgroupConfig{shares: milliToShares(burstable), quota: noLimit, memoryLimit: noLimit}),
		applyCgroup(n.dir([]string{"kubepods", "besteffort"}), podCgroupConfig{shares: minShares, quota: noLimit, memoryLimit: noLimit}),
	)
}
