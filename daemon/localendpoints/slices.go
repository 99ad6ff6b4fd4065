package localendpoints

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
	"github.com/hivelet/hivelet/datapath"
)

// sliceSuffix ends the names of the slices made here; a manifests
// EndpointSlice of the same Service keeps serving beside them.
const sliceSuffix = "-hivelet-local"

// desired is the EndpointSlices the Service's selector gives over pods,
// as the EndpointSlice controller builds them: pods that are not finished
// and have an address, ready when their Ready condition is and they are
// not being deleted, grouped by the ports their named target ports
// resolve to, one slice per group and address family.
func desired(svc *lb.Service, idx podIndex, node string) []*lb.EndpointSlice {
	type group struct {
		ports []lb.EndpointPort
		eps   [2][]lb.Endpoint // IPv4, IPv6
	}
	groups := map[string]*group{}
	for _, pod := range idx.candidates(svc.Name.Namespace, svc.Selector.Labels) {
		if !matches(svc.Selector.Labels, pod.Labels) ||
			pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		addrs := podAddrs(pod)
		ports := resolvePorts(svc.Selector.Ports, pod)
		if len(addrs) == 0 || len(ports) == 0 {
			continue
		}
		key := portsKey(ports)
		g := groups[key]
		if g == nil {
			g = &group{ports: ports}
			groups[key] = g
		}
		ready, terminating := isReady(pod), pod.DeletionTimestamp != nil
		for _, a := range addrs {
			fam := 0
			if a.Is6() {
				fam = 1
			}
			g.eps[fam] = append(g.eps[fam], lb.Endpoint{Addr: a, Ready: ready && !terminating, Serving: ready,
				Terminating: terminating, NodeName: node})
		}
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []*lb.EndpointSlice
	for i, k := range keys {
		g := groups[k]
		for fam, eps := range g.eps {
			if len(eps) == 0 {
				continue
			}
			slices.SortFunc(eps, func(a, b lb.Endpoint) int { return a.Addr.Compare(b.Addr) })
			name := fmt.Sprintf("%s%s-%d-v4", svc.Name.Name, sliceSuffix, i)
			if fam == 1 {
				name = name[:len(name)-1] + "6"
			}
			out = append(out, &lb.EndpointSlice{Namespace: svc.Name.Namespace, Name: name, Service: svc.Name,
				IPv6: fam == 1, Ports: g.ports, Endpoints: eps})
		}
	}
	return out
}

// podIndex finds a selector's candidate pods without a walk over all of
// them: by namespace, then by each label (key=value).
type podIndex map[string]map[string][]*corev1.Pod

func indexPods(pods []corev1.Pod) podIndex {
	idx := podIndex{}
	for i := range pods {
		p := &pods[i]
		byLabel := idx[p.Namespace]
		if byLabel == nil {
			byLabel = map[string][]*corev1.Pod{}
			idx[p.Namespace] = byLabel
		}
		for k, v := range p.Labels {
			byLabel[k+"="+v] = append(byLabel[k+"="+v], p)
		}
	}
	return idx
}

// candidates are the pods of ns carrying the selector's rarest label;
// every one of them is still checked against the whole selector.
func (idx podIndex) candidates(ns string, sel map[string]string) []*corev1.Pod {
	var best []*corev1.Pod
	first := true
	for k, v := range sel {
		c := idx[ns][k+"="+v]
		if first || len(c) < len(best) {
			best, first = c, false
		}
	}
	return best
}

func matches(sel, labels map[string]string) bool {
	for k, v := range sel {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func isReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podAddrs are the pod's valid addresses, one per family.
func podAddrs(pod *corev1.Pod) []netip.Addr {
	ips := make([]string, 0, 2)
	for _, ip := range pod.Status.PodIPs {
		ips = append(ips, ip.IP)
	}
	if len(ips) == 0 && pod.Status.PodIP != "" {
		ips = append(ips, pod.Status.PodIP)
	}
	var out []netip.Addr
	var seen [2]bool
	for _, s := range ips {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			continue
		}
		a = a.Unmap()
		fam := 0
		if a.Is6() {
			fam = 1
		}
		if !seen[fam] {
			seen[fam] = true
			out = append(out, a)
		}
	}
	return out
}

// resolvePorts maps the Service's target ports onto the pod: a number as
// it is, a name to the pod's container port of that name and protocol.
// A name the pod lacks leaves that port out for this pod.
func resolvePorts(tps []lb.TargetPort, pod *corev1.Pod) []lb.EndpointPort {
	out := make([]lb.EndpointPort, 0, len(tps))
	for _, tp := range tps {
		port := tp.Number
		if tp.Named != "" {
			port = namedPort(pod, tp.Named, tp.Proto)
		}
		if port != 0 {
			out = append(out, lb.EndpointPort{Name: tp.Name, Proto: tp.Proto, Port: port})
		}
	}
	return out
}

func namedPort(pod *corev1.Pod, name string, proto datapath.L4Proto) uint16 {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			for _, p := range c.Ports {
				if p.Name == name && protoOf(p.Protocol) == proto && p.ContainerPort > 0 && p.ContainerPort <= 65535 {
					return uint16(p.ContainerPort)
				}
			}
		}
	}
	return 0
}

// protoOf is a container port's protocol; empty is TCP, and an unknown
// one matches no Service port.
func protoOf(p corev1.Protocol) datapath.L4Proto {
	if p == "" {
		return datapath.TCP
	}
	proto, _ := datapath.ParseL4Proto(string(p))
	return proto
}

func portsKey(ps []lb.EndpointPort) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "%s/%d/%d,", p.Name, p.Proto, p.Port)
	}
	return b.String()
}
