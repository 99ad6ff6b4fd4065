package k8s

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/hivelet/hivelet/test/harness"
	"github.com/hivelet/hivelet/test/testnet"
)

// env is a node namespace with three serving pods, a child cgroup the test
// process sits in, and an agent watching the real API server.
type env struct {
	node   *testnet.Node
	bpffs  string
	prefix string // unique object-name prefix, so runs never collide
	ctx    context.Context
	agent  *harness.Agent
	// nodeName is the Node the agent runs as; its InternalIP is the node
	// namespace's bridge address.
	nodeName string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvAs(t, "--kubeconfig", kubeconfig)
}

// newEnvAs is newEnv with the agent reaching the API server as auth
// says (--kubeconfig FILE, and any other flags).
func newEnvAs(t *testing.T, auth ...string) *env {
	t.Helper()
	testnet.RequireRoot(t)
	e := &env{
		node:   testnet.NewNode(t, 3),
		bpffs:  filepath.Join(t.TempDir(), "bpffs"),
		prefix: fmt.Sprintf("hl%d-", os.Getpid()),
		ctx:    context.Background(),
	}
	for _, p := range e.node.Pods {
		p.Serve(t, 8080)
	}
	cg := testnet.NewCgroup(t)
	t.Cleanup(func() { _, _ = harness.Run(hiveletBin, "agent", "--cleanup", "--bpffs", e.bpffs) })
	testnet.EnterCgroup(t, cg)
	e.nodeName = e.prefix + "node"
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: e.nodeName},
		Status:     corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: testnet.NodeIPv4.String()}}},
	}
	created, err := client.CoreV1().Nodes().Create(e.ctx, node, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Status is a subresource: addresses go in with a status update.
	created.Status = node.Status
	if _, err := client.CoreV1().Nodes().UpdateStatus(e.ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.CoreV1().Nodes().Delete(e.ctx, e.nodeName, metav1.DeleteOptions{}) })
	e.agent = harness.StartAgent(t, hiveletBin, append(auth, "--bpffs", e.bpffs, "--cgroup2", cg,
		"--hostname-override", e.nodeName)...)
	return e
}

func (e *env) service(t *testing.T, name string, mutate func(*corev1.Service)) *corev1.Service {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: e.prefix + name, Namespace: "default"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	}
	if mutate != nil {
		mutate(svc)
	}
	out, err := client.CoreV1().Services("default").Create(e.ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.CoreV1().Services("default").Delete(e.ctx, out.Name, metav1.DeleteOptions{}) })
	return out
}

func (e *env) sliceFor(svc string, pods ...int) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: svc + "-1", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for _, i := range pods {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{e.node.Pods[i].IPv4.String()},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
		})
	}
	return s
}

func (e *env) createSlice(t *testing.T, s *discoveryv1.EndpointSlice) {
	t.Helper()
	if _, err := client.DiscoveryV1().EndpointSlices("default").Create(e.ctx, s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = client.DiscoveryV1().EndpointSlices("default").Delete(e.ctx, s.Name, metav1.DeleteOptions{})
	})
}

// answers dials vip n times from the node namespace and returns the sorted
// pod names that answered.
func (e *env) answers(t *testing.T, vip netip.AddrPort, n int) []string {
	t.Helper()
	return testnet.Answers(t, e.node.NS, vip, n)
}

func (e *env) backends(frontend string) []string {
	return harness.BackendsOf(hiveletBin, e.bpffs, frontend)
}

func TestPrivilegedK8sServicesConverge(t *testing.T) {
	e := newEnv(t)
	svc := e.service(t, "web", nil)
	vip := netip.AddrPortFrom(netip.MustParseAddr(svc.Spec.ClusterIP), 80)
	fe := vip.String() + "/TCP"
	slice := e.sliceFor(svc.Name, 0, 1)
	e.createSlice(t, slice)

	harness.WaitFor(t, "the Service to be programmed", func() bool { return len(e.backends(fe)) == 2 })
	if got := e.answers(t, vip, 40); !slices.Equal(got, []string{"pod-1", "pod-2"}) {
		t.Fatalf("answers = %v, want pod-1 and pod-2", got)
	}

	// An EndpointSlice edit through the API.
	slice = e.sliceFor(svc.Name, 1, 2)
	if _, err := client.DiscoveryV1().EndpointSlices("default").Update(e.ctx, slice, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, "the slice edit", func() bool {
		return slices.Equal(e.backends(fe), []string{e.node.Pods[1].IPv4.String() + ":8080/TCP", e.node.Pods[2].IPv4.String() + ":8080/TCP"})
	})
	if got := e.answers(t, vip, 40); !slices.Equal(got, []string{"pod-2", "pod-3"}) {
		t.Fatalf("answers after the edit = %v", got)
	}

	// A port change moves the frontend.
	cur, err := client.CoreV1().Services("default").Get(e.ctx, svc.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Spec.Ports[0].Port = 8081
	if _, err := client.CoreV1().Services("default").Update(e.ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	moved := netip.AddrPortFrom(vip.Addr(), 8081).String() + "/TCP"
	harness.WaitFor(t, "the port change", func() bool { return e.backends(fe) == nil && len(e.backends(moved)) == 2 })

	// Delete and re-create.
	if err := client.CoreV1().Services("default").Delete(e.ctx, svc.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, "the delete", func() bool { return e.backends(moved) == nil })
	again := e.service(t, "web", func(s *corev1.Service) { s.Spec.ClusterIP = svc.Spec.ClusterIP })
	harness.WaitFor(t, "the re-created Service", func() bool { return len(e.backends(again.Spec.ClusterIP+":80/TCP")) == 2 })
}

func TestPrivilegedK8sIgnoredServices(t *testing.T) {
	e := newEnv(t)
	headless := e.service(t, "headless", func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone })
	e.createSlice(t, e.sliceFor(headless.Name, 0))
	other := e.service(t, "other", func(s *corev1.Service) {
		s.Labels = map[string]string{"service.kubernetes.io/service-proxy-name": "someone-else"}
	})
	e.createSlice(t, e.sliceFor(other.Name, 0))
	// A marker Service proves the agent has seen everything created before it.
	marker := e.service(t, "marker", nil)
	e.createSlice(t, e.sliceFor(marker.Name, 0))
	harness.WaitFor(t, "the marker", func() bool { return len(e.backends(marker.Spec.ClusterIP+":80/TCP")) == 1 })
	if b := e.backends(other.Spec.ClusterIP + ":80/TCP"); b != nil {
		t.Errorf("a Service labelled for another proxy was programmed: %v", b)
	}
	rows, err := harness.ServiceList(hiveletBin, e.bpffs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Frontend == "None:80/TCP" {
			t.Errorf("headless Service programmed: %+v", r)
		}
	}

	// Handing a Service back to us programs it.
	cur, err := client.CoreV1().Services("default").Get(e.ctx, other.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Labels = nil
	if _, err := client.CoreV1().Services("default").Update(e.ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, "the hand-back", func() bool { return len(e.backends(other.Spec.ClusterIP+":80/TCP")) == 1 })
}

// TestPrivilegedK8sHealthAndMetrics checks the kube-proxy-style surfaces:
// healthz once synced, and a network-programming latency computed from the
// EndpointSlice's last-change-trigger-time annotation.
func TestPrivilegedK8sHealthAndMetrics(t *testing.T) {
	e := newEnv(t)
	svc := e.service(t, "metrics", nil)
	slice := e.sliceFor(svc.Name, 0)
	trigger := time.Now()
	slice.Annotations = map[string]string{corev1.EndpointsLastChangeTriggerTime: trigger.Format(time.RFC3339Nano)}
	e.createSlice(t, slice)
	harness.WaitFor(t, "the Service", func() bool { return len(e.backends(svc.Spec.ClusterIP+":80/TCP")) == 1 })

	var healthz, metricsAddr string
	harness.WaitFor(t, "the agent's listen addresses", func() bool {
		healthz, metricsAddr = e.agent.Addr("healthz"), e.agent.Addr("metrics")
		return healthz != "" && metricsAddr != ""
	})
	for _, path := range []string{"/healthz", "/livez"} {
		code, body, err := harness.Get(healthz, path)
		if err != nil || code != 200 || !strings.Contains(body, `"healthy":true`) {
			t.Errorf("GET %s = %d %q, %v; want 200 and healthy", path, code, body, err)
		}
	}
	var page string
	harness.WaitFor(t, "a network-programming sample", func() bool {
		_, page, _ = harness.Get(metricsAddr, "/metrics")
		return harness.Metric(page, "hivelet_network_programming_duration_seconds_count") >= 1
	})
	sum := harness.Metric(page, "hivelet_network_programming_duration_seconds_sum")
	if max := time.Since(trigger).Seconds(); sum <= 0 || sum > max*10 {
		t.Errorf("programming latency sum %v s; the change happened %v s ago", sum, max)
	}
	for _, sample := range []string{"hivelet_sync_proxy_rules_duration_seconds_count", "hivelet_service_frontends", "hivelet_services",
		`hivelet_bpf_map_entries{map="services"}`, `hivelet_bpf_map_capacity{map="services"}`} {
		if harness.Metric(page, sample) <= 0 {
			t.Errorf("metric %s missing or zero:\n%s", sample, page)
		}
	}
}

// TestPrivilegedK8sNodePortAndLocalPolicy reaches a NodePort on the node's
// InternalIP from the node, and checks internalTrafficPolicy Local keeps a
// ClusterIP on this node's endpoints.
func TestPrivilegedK8sNodePortAndLocalPolicy(t *testing.T) {
	e := newEnv(t)
	svc := e.service(t, "np", func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeNodePort
		s.Spec.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyLocal)
	})
	slice := e.sliceFor(svc.Name, 0, 1)
	slice.Endpoints[0].NodeName = ptr.To(e.nodeName)
	slice.Endpoints[1].NodeName = ptr.To("some-other-node")
	e.createSlice(t, slice)

	nodePort := netip.AddrPortFrom(testnet.NodeIPv4, uint16(svc.Spec.Ports[0].NodePort))
	harness.WaitFor(t, "the NodePort frontend", func() bool { return len(e.backends(nodePort.String()+"/TCP")) == 2 })
	if got := e.answers(t, nodePort, 40); !slices.Equal(got, []string{"pod-1", "pod-2"}) {
		t.Errorf("NodePort answers = %v, want both pods (node-local traffic uses every endpoint)", got)
	}
	vip := netip.AddrPortFrom(netip.MustParseAddr(svc.Spec.ClusterIP), 80)
	if got := e.answers(t, vip, 40); !slices.Equal(got, []string{"pod-1"}) {
		t.Errorf("ClusterIP answers with internalTrafficPolicy Local = %v, want only this node's pod-1", got)
	}
}
