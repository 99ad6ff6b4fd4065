package pods

import (
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
)

// Upstream admission's reasons for a pod that does not belong on the
// node; a pod short of a resource gets "OutOf<resource>" (OutOfcpu).
const (
	reasonNodeAffinity    = "NodeAffinity"
	reasonTaintToleration = "TaintToleration"
)

// systemCriticalPriority is the priority from which a pod is critical
// (system-cluster-critical and above), as upstream counts it.
const systemCriticalPriority = 2000000000

// IsCritical says whether pod is one the node must run even when its
// resources are taken, and never evicts: a static pod, or one of
// system-critical priority. Upstream preempts other pods to admit one;
// kubelet-lite admits it without preempting.
func IsCritical(pod *corev1.Pod) bool {
	return IsStatic(pod) || pod.Spec.Priority != nil && *pod.Spec.Priority >= systemCriticalPriority
}

// admitOnNode checks what the scheduler checked against the Node and
// could have changed since, or what a pod bound by hand never went
// through: its node selector and required affinity, and NoExecute taints
// it does not tolerate. Without a Node read yet, nothing is checked.
func (m *Manager) admitOnNode(pod *corev1.Pod) (string, error) {
	if m.cfg.Node == nil {
		return "", nil
	}
	node := m.cfg.Node()
	if node == nil {
		return "", nil
	}
	if ok, err := nodeaffinity.GetRequiredNodeAffinity(pod).Match(node); err != nil || !ok {
		return reasonNodeAffinity, fmt.Errorf("Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector")
	}
	taint, untolerated := corev1helpers.FindMatchingUntoleratedTaint(klog.Background(), node.Spec.Taints, pod.Spec.Tolerations, func(t *corev1.Taint) bool {
		return t.Effect == corev1.TaintEffectNoExecute
	}, true)
	if untolerated {
		return reasonTaintToleration, fmt.Errorf("Predicate TaintToleration failed: node(s) had untolerated taint {%s: %s}", taint.Key, taint.Value)
	}
	return "", nil
}

// fits checks pod's requests, added to those of the pods already
// admitted, against allocatable, and the pod count against its pods
// entry; upstream's reason and message name the first resource short.
func fits(others []*corev1.Pod, pod *corev1.Pod, allocatable corev1.ResourceList) (string, error) {
	if q, ok := allocatable[corev1.ResourcePods]; ok && int64(len(others))+1 > q.Value() {
		return short(corev1.ResourcePods, 1, int64(len(others)), q.Value())
	}
	want := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	if len(want) == 0 {
		return "", nil
	}
	used := corev1.ResourceList{}
	for _, o := range others {
		for name, q := range resourcehelper.PodRequests(o, resourcehelper.PodResourcesOptions{}) {
			u := used[name]
			u.Add(q)
			used[name] = u
		}
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		q := want[name]
		if q.IsZero() {
			continue
		}
		alloc, u := allocatable[name], used[name]
		val := func(x resource.Quantity) int64 {
			if name == corev1.ResourceCPU {
				return x.MilliValue()
			}
			return x.Value()
		}
		// Summed and compared as quantities: a request of 8Ei, or 1E CPUs
		// (whose millicores overflow int64), must not wrap into a fit.
		total := u.DeepCopy()
		total.Add(q)
		if q.Sign() < 0 || total.Cmp(alloc) > 0 {
			return short(name, val(q), val(u), val(alloc))
		}
	}
	return "", nil
}

// short is upstream's InsufficientResourceError as a reason and message.
func short(name corev1.ResourceName, requested, used, capacity int64) (string, error) {
	return "OutOf" + string(name), fmt.Errorf("Node didn't have enough resource: %s, requested: %d, used: %d, capacity: %d", name, requested, used, capacity)
}
