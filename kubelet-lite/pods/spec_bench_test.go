package pods

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// BenchmarkContainerConfig measures the spec → CRI conversion a pod
// start pays per container (admission included): a bare container as
// the baseline, and one with a full security context, 20 variables,
// resource fields and the managed files (hosts, termination log).
func BenchmarkContainerConfig(b *testing.B) {
	m := &Manager{cfg: Config{NodeName: "n", NodeIPs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}, RootDir: b.TempDir(), CgroupRoot: "/",
		ClusterDNS: []netip.Addr{netip.MustParseAddr("10.96.0.10")}, ClusterDomain: "cluster.local",
		Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("8Gi")}},
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	bare := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "u-1"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	full := securePod()
	c := &full.Spec.Containers[0]
	c.TerminationMessagePath = corev1.TerminationMessagePathDefault
	c.Resources.Limits = res("500m", "64Mi")
	for i := range 20 {
		c.Env = append(c.Env, corev1.EnvVar{Name: fmt.Sprintf("V%d", i), Value: fmt.Sprintf("$(V%d)-x", max(i-1, 0))})
	}
	c.Env = append(c.Env,
		corev1.EnvVar{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		corev1.EnvVar{Name: "MEM", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}})
	full.Spec.HostAliases = []corev1.HostAlias{{IP: "192.0.2.7", Hostnames: []string{"db"}}}
	full.Spec.AutomountServiceAccountToken = ptr.To(false)
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
	}{{"spec=bare", bare}, {"spec=hardened", full}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.admit(tc.pod); err != nil {
					b.Fatal(err)
				}
				if _, err := m.SandboxConfig(tc.pod, 0); err != nil {
					b.Fatal(err)
				}
				if _, err := m.ContainerConfig(context.Background(), tc.pod, &tc.pod.Spec.Containers[0], 0, []string{"10.244.0.5"}, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
