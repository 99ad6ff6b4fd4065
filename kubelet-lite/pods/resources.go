package pods

import (
	"fmt"
	"strings"

	"gopkg.in/inf.v0"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// resourceValue is a resourceFieldRef's value for container c, as the
// upstream kubelet computes it: a limit the container does not set is
// the node's allocatable amount, and the quantity divided by the divisor
// (default 1) is rounded up. The division is exact on decimals, so a
// divisor such as 1E or 1m never overflows or divides by zero.
func resourceValue(c *corev1.Container, ref *corev1.ResourceFieldSelector, alloc corev1.ResourceList) (string, error) {
	kind, name, ok := strings.Cut(ref.Resource, ".")
	if !ok || kind != "limits" && kind != "requests" {
		return "", fmt.Errorf("resourceFieldRef %q is not supported", ref.Resource)
	}
	res := corev1.ResourceName(name)
	switch {
	case res == corev1.ResourceCPU, res == corev1.ResourceMemory, res == corev1.ResourceEphemeralStorage,
		strings.HasPrefix(name, corev1.ResourceHugePagesPrefix):
	default:
		return "", fmt.Errorf("resourceFieldRef %q is not supported", ref.Resource)
	}
	var q resource.Quantity
	if kind == "limits" {
		var set bool
		if q, set = c.Resources.Limits[res]; !set {
			q = alloc[res]
		}
	} else {
		q = c.Resources.Requests[res]
	}
	div := ref.Divisor
	if div.Sign() == 0 {
		div = resource.MustParse("1")
	}
	if div.Sign() < 0 {
		return "", fmt.Errorf("resourceFieldRef %q: divisor %s must be positive", ref.Resource, div.String())
	}
	num, den := q.AsDec(), div.AsDec()
	if res != corev1.ResourceCPU {
		// Memory and storage count whole bytes, both sides rounded up,
		// as the upstream kubelet's Value() does.
		num, den = new(inf.Dec).Round(num, 0, inf.RoundCeil), new(inf.Dec).Round(den, 0, inf.RoundCeil)
	}
	out := new(inf.Dec).QuoRound(num, den, 0, inf.RoundCeil)
	return out.String(), nil
}

// resourceFor finds the container a downward API volume item's
// resourceFieldRef names.
func resourceFor(pod *corev1.Pod, ref *corev1.ResourceFieldSelector, alloc corev1.ResourceList) (string, error) {
	for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range cs {
			if cs[i].Name == ref.ContainerName {
				return resourceValue(&cs[i], ref, alloc)
			}
		}
	}
	return "", fmt.Errorf("resourceFieldRef: no container %q in the pod", ref.ContainerName)
}
