package loadbalancer

import (
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/hivelet/hivelet/datapath"
)

// TypeHostPort is the Type of the Service the agent makes of a pod's
// hostPorts: Cilium's way (the agent serves them from its maps) rather
// than the portmap CNI plugin's (iptables DNAT per pod), so they work
// whichever kubelet and CNI plugin started the pod.
const TypeHostPort = "HostPort"

// HostPort is one containerPort with a hostPort.
type HostPort struct {
	// HostIP is the one node address it listens on; the zero Addr means
	// every node address and loopback, as the portmap plugin does.
	HostIP  netip.Addr
	Port    uint16
	Proto   datapath.L4Proto
	Backend netip.AddrPort // the pod's address of the family, containerPort
}

// HostPortName names the Service of a pod's hostPorts. A Service name
// cannot hold ':', so it never meets a real Service's.
func HostPortName(namespace, pod string) ServiceName {
	return ServiceName{Namespace: namespace, Name: "pod:" + pod}
}

// ConvertPodHostPorts is the Service serving pod's hostPorts: nil when it
// has none that can be served now (no hostPort, host network, no address
// yet, finished). Ports the API server would not have admitted are
// skipped rather than trusted.
func ConvertPodHostPorts(pod *corev1.Pod) *Service {
	if pod == nil || pod.Spec.HostNetwork || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil
	}
	var ips []netip.Addr
	for _, p := range pod.Status.PodIPs {
		if a, err := netip.ParseAddr(p.IP); err == nil && a.Zone() == "" {
			ips = append(ips, a.Unmap())
		}
	}
	if len(ips) == 0 {
		if a, err := netip.ParseAddr(pod.Status.PodIP); err == nil && a.Zone() == "" {
			ips = append(ips, a.Unmap())
		}
	}
	if len(ips) == 0 {
		return nil
	}
	var hps []HostPort
	add := func(c *corev1.Container) {
		for _, p := range c.Ports {
			if p.HostPort < 1 || p.HostPort > 65535 || p.ContainerPort < 1 || p.ContainerPort > 65535 {
				continue
			}
			proto, errs := convertProto(p.Protocol, field.NewPath("protocol"))
			if len(errs) > 0 {
				continue
			}
			var hostIP netip.Addr
			if p.HostIP != "" {
				a, err := netip.ParseAddr(p.HostIP)
				if err != nil || a.Zone() != "" {
					continue
				}
				if !a.IsUnspecified() {
					hostIP = a.Unmap()
				}
			}
			for _, ip := range ips {
				if hostIP.IsValid() && hostIP.Is4() != ip.Is4() {
					continue
				}
				hps = append(hps, HostPort{HostIP: hostIP, Port: uint16(p.HostPort), Proto: proto,
					Backend: netip.AddrPortFrom(ip, uint16(p.ContainerPort))})
			}
		}
	}
	for i := range pod.Spec.InitContainers {
		// Sidecars (restartable init containers) serve ports too.
		if c := &pod.Spec.InitContainers[i]; c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			add(c)
		}
	}
	for i := range pod.Spec.Containers {
		add(&pod.Spec.Containers[i])
	}
	if len(hps) == 0 {
		return nil
	}
	slices.SortFunc(hps, compareHostPorts)
	return &Service{Name: HostPortName(pod.Namespace, pod.Name), Type: TypeHostPort, HostPorts: slices.Compact(hps)}
}

func compareHostPorts(a, b HostPort) int {
	if c := a.HostIP.Compare(b.HostIP); c != 0 {
		return c
	}
	if a.Port != b.Port {
		return int(a.Port) - int(b.Port)
	}
	if a.Proto != b.Proto {
		return int(a.Proto) - int(b.Proto)
	}
	return a.Backend.Compare(b.Backend)
}

// hostPortFrontends serves each hostPort as a NodePort with the one local
// backend: at its hostIP, or at every node address of the backend's
// family and at loopback (hostPort reached from the node itself). The
// first of two pods claiming the same frontend keeps it, as the
// reconciler does for any two owners.
func hostPortFrontends(svc *Service, node *Node) []Entry {
	var out []Entry
	for _, hp := range svc.HostPorts {
		addrs := []netip.Addr{hp.HostIP}
		if !hp.HostIP.IsValid() {
			addrs = []netip.Addr{netip.IPv6Loopback()}
			if hp.Backend.Addr().Is4() {
				addrs[0] = netip.AddrFrom4([4]byte{127, 0, 0, 1})
			}
			if node != nil {
				for _, a := range node.Addrs {
					if a.Is4() == hp.Backend.Addr().Is4() {
						addrs = append(addrs, a)
					}
				}
			}
		}
		for _, a := range addrs {
			out = append(out, Entry{
				Frontend: datapath.Frontend{Addr: a, Port: hp.Port, Proto: hp.Proto, Scope: datapath.ScopeExternal},
				Flags:    datapath.FlagNodePort,
				Backends: []datapath.Backend{{Addr: hp.Backend, Proto: hp.Proto, Local: true}},
			})
		}
	}
	return out
}
