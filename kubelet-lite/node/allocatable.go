package node

import (
	"fmt"
	"runtime"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/hivelet/hivelet/kubelet-lite/eviction"
)

// Reserved is what the node keeps back from pods, as the upstream
// kubelet computes allocatable: --system-reserved and --kube-reserved,
// and the hard eviction thresholds on memory and nodefs (pods allowed up
// to the threshold would be evicted as soon as they used what they were
// promised).
type Reserved struct {
	System, Kube corev1.ResourceList
	Hard         []eviction.Threshold
}

// reservable are the resources --system-reserved and --kube-reserved
// take, upstream's set.
var reservable = []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage, "pid"}

// ParseReserved reads --system-reserved / --kube-reserved's
// "cpu=100m,memory=1Gi" (from a flag) or the KubeletConfiguration map.
func ParseReserved(what string, m map[string]string) (corev1.ResourceList, error) {
	out := corev1.ResourceList{}
	for k, v := range m {
		name := corev1.ResourceName(strings.TrimSpace(k))
		ok := false
		for _, r := range reservable {
			ok = ok || r == name
		}
		if !ok {
			return nil, fmt.Errorf("%s: %q cannot be reserved (cpu, memory, ephemeral-storage, pid)", what, name)
		}
		q, err := resource.ParseQuantity(strings.TrimSpace(v))
		if err != nil || q.Sign() < 0 {
			return nil, fmt.Errorf("%s: %s=%q is not a non-negative quantity", what, name, v)
		}
		out[name] = q
	}
	return out, nil
}

// MaxPods is the node's pod capacity: n, or the upstream default 110.
func MaxPods(n int) int {
	if n <= 0 {
		return defaultMaxPods
	}
	return n
}

// Resources is the node's capacity (CPUs, memory, the root dir's file
// system, maxPods) and its allocatable: capacity less what r reserves,
// never below zero.
func (m Measurement) Resources(r Reserved, maxPods int) (capacity, allocatable corev1.ResourceList) {
	capacity = corev1.ResourceList{
		corev1.ResourceCPU:              *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory:           *resource.NewQuantity(int64(m.MemTotal), resource.BinarySI),
		corev1.ResourceEphemeralStorage: *resource.NewQuantity(int64(m.DiskTotal), resource.BinarySI),
		corev1.ResourcePods:             *resource.NewQuantity(int64(MaxPods(maxPods)), resource.DecimalSI),
	}
	allocatable = capacity.DeepCopy()
	take := func(name corev1.ResourceName, q resource.Quantity) {
		a := allocatable[name]
		a.Sub(q)
		if a.Sign() < 0 {
			a = *resource.NewQuantity(0, a.Format)
		}
		allocatable[name] = a
	}
	for _, list := range []corev1.ResourceList{r.System, r.Kube} {
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage} {
			if q, ok := list[name]; ok {
				take(name, q)
			}
		}
	}
	if t, ok := eviction.Find(r.Hard, eviction.MemoryAvailable); ok {
		take(corev1.ResourceMemory, *resource.NewQuantity(t.Value(int64(m.MemTotal)), resource.BinarySI))
	}
	if t, ok := eviction.Find(r.Hard, eviction.NodeFSAvailable); ok {
		take(corev1.ResourceEphemeralStorage, *resource.NewQuantity(t.Value(int64(m.DiskTotal)), resource.BinarySI))
	}
	return capacity, allocatable
}

// Allocatable measures the machine and returns what it offers pods, as
// the Node's status.allocatable reports it.
func Allocatable(rootDir string, r Reserved, maxPods int) corev1.ResourceList {
	_, a := Measure(rootDir).Resources(r, maxPods)
	return a
}

// KubepodsLimits is what the kubepods cgroup gets, as upstream's node
// allocatable enforcement: CPU (its share) and, when enforced, memory
// (its limit), both capacity less the reservations. The hard eviction
// threshold is not taken off the limit: eviction acts before the limit
// would.
func KubepodsLimits(rootDir string, r Reserved, enforce bool) corev1.ResourceList {
	_, withoutEviction := Measure(rootDir).Resources(Reserved{System: r.System, Kube: r.Kube}, 0)
	out := corev1.ResourceList{corev1.ResourceCPU: withoutEviction[corev1.ResourceCPU]}
	if enforce {
		out[corev1.ResourceMemory] = withoutEviction[corev1.ResourceMemory]
	}
	return out
}
