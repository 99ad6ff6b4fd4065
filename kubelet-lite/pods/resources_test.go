package pods

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestResourceValue(t *testing.T) {
	alloc := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi")}
	c := &corev1.Container{Resources: corev1.ResourceRequirements{
		Limits:   res("1500m", "64Mi"),
		Requests: res("250m", "32Mi"),
	}}
	for _, tc := range []struct {
		resource, divisor, want string
		c                       *corev1.Container
	}{
		{"limits.cpu", "", "2", c}, // 1.5 cores rounded up
		{"limits.cpu", "1m", "1500", c},
		{"requests.cpu", "1m", "250", c},
		{"limits.memory", "", "67108864", c},
		{"limits.memory", "1Mi", "64", c},
		{"requests.memory", "1Ki", "32768", c},
		// Divisors past int64 in milli-units: the kubelet panicked here.
		{"limits.cpu", "1E", "1", c},
		{"limits.memory", "1E", "1", c},
		{"requests.memory", "1Ei", "1", c},
		// Nothing set: limits read as the node's allocatable, requests as 0.
		{"limits.cpu", "", "4", &corev1.Container{}},
		{"limits.memory", "1Gi", "8", &corev1.Container{}},
		{"requests.cpu", "", "0", &corev1.Container{}},
		// A tiny divisor on a huge limit does not overflow either.
		{"limits.memory", "1", "1000000000000000000000", &corev1.Container{Resources: corev1.ResourceRequirements{Limits: res("", "1e21")}}},
	} {
		ref := &corev1.ResourceFieldSelector{Resource: tc.resource}
		if tc.divisor != "" {
			ref.Divisor = resource.MustParse(tc.divisor)
		}
		got, err := resourceValue(tc.c, ref, alloc)
		if err != nil || got != tc.want {
			t.Errorf("%s / %q = %q, %v; want %s", tc.resource, tc.divisor, got, err, tc.want)
		}
	}
	if _, err := resourceValue(c, &corev1.ResourceFieldSelector{Resource: "limits.gpu"}, alloc); err == nil {
		t.Error("an unknown resource was accepted")
	}
	if _, err := resourceValue(c, &corev1.ResourceFieldSelector{Resource: "limits.cpu", Divisor: resource.MustParse("-1")}, alloc); err == nil {
		t.Error("a negative divisor was accepted")
	}
}
