package k8s

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
)

type recorder struct {
	mu       sync.Mutex
	services map[lb.ServiceName]*lb.Service
	slices   map[string]*lb.EndpointSlice
	node     *lb.Node
}

func (r *recorder) OnServiceUpdate(prev, cur *lb.Service) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev != nil {
		delete(r.services, prev.Name)
	}
	if cur != nil {
		r.services[cur.Name] = cur
	}
}

func (r *recorder) OnEndpointSliceUpdate(prev, cur *lb.EndpointSlice) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev != nil {
		delete(r.slices, prev.Key())
	}
	if cur != nil {
		r.slices[cur.Key()] = cur
	}
}

func (r *recorder) OnNodeUpdate(n *lb.Node) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.node = n
}

func (r *recorder) port(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.services[lb.ServiceName{Namespace: "shop", Name: name}]; s != nil {
		return int(s.Ports[0].Port)
	}
	return 0
}

func (r *recorder) sliceCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.slices)
}

func service(name string, port int32) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"},
			Ports: []corev1.ServicePort{{Name: "http", Port: port, Protocol: corev1.ProtocolTCP}}},
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSourceFollowsTheAPI(t *testing.T) {
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-1", Namespace: "shop", Labels: map[string]string{lb.ServiceNameLabel: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080)}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}}},
	}
	client := fake.NewClientset(service("web", 80), slice)
	rec := &recorder{services: map[lb.ServiceName]*lb.Service{}, slices: map[string]*lb.EndpointSlice{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-a", Labels: map[string]string{corev1.LabelTopologyZone: "zone-a"}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: "192.168.1.10"}, {Type: corev1.NodeHostName, Address: "node-a"},
			{Type: corev1.NodeExternalIP, Address: "fd00::a"}}},
	}
	nodeB := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-b"}}
	if _, err := client.CoreV1().Nodes().Create(context.Background(), node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Nodes().Create(context.Background(), nodeB, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := New(client, "node-a", rec, slog.New(slog.NewTextHandler(io.Discard, nil))).Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Start returns after the initial list: no waiting needed.
	if rec.port("web") != 80 || rec.sliceCount() != 1 {
		t.Fatalf("after Start: web port %d, %d slices", rec.port("web"), rec.sliceCount())
	}
	rec.mu.Lock()
	n := rec.node
	rec.mu.Unlock()
	if n == nil || n.Name != "node-a" || n.Zone != "zone-a" || len(n.Addrs) != 2 || n.Addrs[0].String() != "192.168.1.10" {
		t.Errorf("node = %+v, want node-a in zone-a with its two addresses", n)
	}

	svcs := client.CoreV1().Services("shop")
	if _, err := svcs.Update(ctx, service("web", 81), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the update", func() bool { return rec.port("web") == 81 })

	// An invalid update keeps the last valid version.
	if _, err := svcs.Update(ctx, service("web", 0), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := svcs.Create(ctx, service("marker", 9), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the marker", func() bool { return rec.port("marker") == 9 })
	if p := rec.port("web"); p != 81 {
		t.Errorf("after an invalid update web has port %d, want the last valid 81", p)
	}

	// Labelled for another proxy: gone for us.
	other := service("web", 81)
	other.Labels = map[string]string{lb.ServiceProxyNameLabel: "someone-else"}
	if _, err := svcs.Update(ctx, other, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the hand-over", func() bool { return rec.port("web") == 0 })

	if err := client.DiscoveryV1().EndpointSlices("shop").Delete(ctx, "web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the slice delete", func() bool { return rec.sliceCount() == 0 })
}
