package loadbalancer

import (
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hivelet/hivelet/datapath"
)

func hostPortPod(ports ...corev1.ContainerPort) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Ports: ports}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.0.5",
			PodIPs: []corev1.PodIP{{IP: "10.244.0.5"}, {IP: "fd00:10::5"}}},
	}
}

// frontendsOf lists the frontends an entry list serves, as "addr:port/proto -> backend".
func frontendsOf(es []Entry) []string {
	var out []string
	for _, e := range es {
		if e.Flags != datapath.FlagNodePort || len(e.Backends) != 1 || !e.Backends[0].Local || e.Frontend.Scope != datapath.ScopeExternal {
			out = append(out, "unexpected "+e.String())
			continue
		}
		out = append(out, e.Frontend.String()+" -> "+e.Backends[0].Addr.String())
	}
	slices.Sort(out)
	return out
}

func TestHostPortsServedAtTheirAddresses(t *testing.T) {
	pod := hostPortPod(
		corev1.ContainerPort{ContainerPort: 8080, HostPort: 54323, HostIP: "127.0.0.1"},
		corev1.ContainerPort{ContainerPort: 8080, HostPort: 54324, Protocol: corev1.ProtocolUDP},
		corev1.ContainerPort{ContainerPort: 9090},                                         // no hostPort: not served
		corev1.ContainerPort{ContainerPort: 9091, HostPort: 70000},                        // out of range: skipped
		corev1.ContainerPort{ContainerPort: 9092, HostPort: 1234, Protocol: "ICMP"},       // not a protocol: skipped
		corev1.ContainerPort{ContainerPort: 9093, HostPort: 1235, HostIP: "../../etc"},    // not an address: skipped
		corev1.ContainerPort{ContainerPort: 9094, HostPort: 1236, HostIP: "192.168.1.10"}, // one node address
		corev1.ContainerPort{ContainerPort: 9094, HostPort: 1236, HostIP: "192.168.1.10"}, // repeated: once
		corev1.ContainerPort{ContainerPort: 9095, HostPort: 1237, HostIP: "0.0.0.0"},      // every address
		corev1.ContainerPort{ContainerPort: 9096, HostPort: 1238, HostIP: "fd00::a"},      // IPv6 only
	)
	svc := ConvertPodHostPorts(pod)
	if svc == nil || svc.Name != HostPortName("shop", "web") || svc.Type != TypeHostPort {
		t.Fatalf("ConvertPodHostPorts = %+v", svc)
	}
	node := &Node{Name: "n", Addrs: []netip.Addr{netip.MustParseAddr("192.168.1.10"), netip.MustParseAddr("fd00::a")}}
	got := frontendsOf(Frontends(svc, nil, node))
	want := []string{
		"127.0.0.1:1237/TCP -> 10.244.0.5:9095",
		"127.0.0.1:54323/TCP -> 10.244.0.5:8080",
		"127.0.0.1:54324/UDP -> 10.244.0.5:8080",
		"192.168.1.10:1236/TCP -> 10.244.0.5:9094",
		"192.168.1.10:1237/TCP -> 10.244.0.5:9095",
		"192.168.1.10:54324/UDP -> 10.244.0.5:8080",
		"[::1]:1237/TCP -> [fd00:10::5]:9095",
		"[::1]:54324/UDP -> [fd00:10::5]:8080",
		"[fd00::a]:1237/TCP -> [fd00:10::5]:9095",
		"[fd00::a]:1238/TCP -> [fd00:10::5]:9096",
		"[fd00::a]:54324/UDP -> [fd00:10::5]:8080",
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("frontends:\n got %q\nwant %q", got, want)
	}
	// Before the Node is known: loopback and explicit addresses only.
	if got := frontendsOf(Frontends(svc, nil, nil)); len(got) != 7 {
		t.Errorf("without a node: %q, want the 7 loopback and explicit frontends", got)
	}
}

func TestHostPortsOnlyOfRunningPodNetworkPods(t *testing.T) {
	port := corev1.ContainerPort{ContainerPort: 80, HostPort: 8080}
	cases := map[string]func(*corev1.Pod){
		"host network": func(p *corev1.Pod) { p.Spec.HostNetwork = true },
		"no address":   func(p *corev1.Pod) { p.Status.PodIP, p.Status.PodIPs = "", nil },
		"succeeded":    func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded },
		"failed":       func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed },
		"no hostPort":  func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].HostPort = 0 },
		"plain init container": func(p *corev1.Pod) {
			p.Spec.InitContainers, p.Spec.Containers = p.Spec.Containers, nil
		},
	}
	for name, edit := range cases {
		pod := hostPortPod(port)
		edit(pod)
		if svc := ConvertPodHostPorts(pod); svc != nil {
			t.Errorf("%s: served %+v, want nothing", name, svc.HostPorts)
		}
	}
	// A sidecar's ports are served, and PodIP alone is enough.
	pod := hostPortPod(port)
	pod.Status.PodIPs = nil
	always := corev1.ContainerRestartPolicyAlways
	pod.Spec.InitContainers = []corev1.Container{{Name: "sidecar", RestartPolicy: &always,
		Ports: []corev1.ContainerPort{{ContainerPort: 81, HostPort: 8081, Protocol: corev1.ProtocolSCTP}}}}
	svc := ConvertPodHostPorts(pod)
	if svc == nil || len(svc.HostPorts) != 2 || svc.HostPorts[1].Proto != datapath.SCTP ||
		svc.HostPorts[1].Backend != netip.MustParseAddrPort("10.244.0.5:81") {
		t.Errorf("sidecar pod: %+v, want the container's and the sidecar's hostPort", svc)
	}
}
