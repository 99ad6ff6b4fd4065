package localendpoints

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"

	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
	"github.com/hivelet/hivelet/datapath"
)

type discard struct{}

func (discard) OnServiceUpdate(_, _ *lb.Service)             {}
func (discard) OnEndpointSliceUpdate(_, _ *lb.EndpointSlice) {}

// BenchmarkReconcile is the work one pod change costs a standalone node:
// every selector Service rebuilt against every pod (a full node: 110
// pods), with one pod's readiness flipped per round so one slice is
// published each time.
func BenchmarkReconcile(b *testing.B) {
	for _, services := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("services=%d/pods=110", services), func(b *testing.B) {
			pods := make([]corev1.Pod, 110)
			for i := range pods {
				pods[i] = pod(fmt.Sprintf("p%d", i), true, fmt.Sprintf("10.244.%d.%d", i/250, 2+i%250),
					map[string]string{"app": fmt.Sprintf("a%d", i%services)},
					corev1.ContainerPort{Name: "http", ContainerPort: 8080})
			}
			src := NewPods()
			src.SetSource(func() []corev1.Pod { return pods }, func() bool { return true })
			c := New(discard{}, src, "n1", slog.New(slog.NewTextHandler(io.Discard, nil)))
			for i := range services {
				c.OnServiceUpdate(nil, &lb.Service{Name: lb.ServiceName{Namespace: "web", Name: fmt.Sprintf("s%d", i)}, Type: "ClusterIP",
					ClusterIPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)})},
					Ports:      []lb.ServicePort{{Name: "http", Proto: datapath.TCP, Port: 80}},
					Selector: &lb.Selector{Labels: map[string]string{"app": fmt.Sprintf("a%d", i)},
						Ports: []lb.TargetPort{{Name: "http", Proto: datapath.TCP, Named: "http"}}}})
			}
			c.Reconcile()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				p := &pods[i%len(pods)]
				p.Status.Conditions[0].Status = map[bool]corev1.ConditionStatus{true: corev1.ConditionTrue, false: corev1.ConditionFalse}[i%2 == 0]
				c.Reconcile()
			}
		})
	}
}
