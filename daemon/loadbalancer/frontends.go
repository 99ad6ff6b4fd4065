package loadbalancer

import (
	"net/netip"
	"slices"

	"github.com/hivelet/hivelet/datapath"
)

// Frontends computes the datapath entries of a Service from its
// EndpointSlices, with kube-proxy's semantics:
//   - one frontend per (address, port): every ClusterIP, external IP and
//     load-balancer ingress IP, for each spec.ports entry;
//   - backends come from slices of the frontend's address family whose
//     port has the same name and protocol as the service port;
//   - ready endpoints are used; when none is ready, serving endpoints that
//     are terminating are used instead, so connections drain gracefully;
//   - addresses repeated across slices count once.
func Frontends(svc *Service, eps []*EndpointSlice) []Entry {
	var out []Entry
	for _, sp := range svc.Ports {
		be4 := backendsFor(sp, eps, false)
		be6 := backendsFor(sp, eps, true)
		add := func(addrs []netip.Addr, flags datapath.ServiceFlags) {
			for _, a := range addrs {
				bes := be4
				if a.Is6() {
					bes = be6
				}
				out = append(out, Entry{
					Frontend: datapath.Frontend{Addr: a, Port: sp.Port, Proto: sp.Proto, Scope: datapath.ScopeExternal},
					Flags:    flags,
					Backends: bes,
				})
			}
		}
		add(svc.ClusterIPs, datapath.FlagClusterIP)
		add(svc.ExternalIPs, datapath.FlagExternalIP)
		add(svc.LoadBalancerIPs, datapath.FlagLoadBalancer)
	}
	return out
}

func backendsFor(sp ServicePort, eps []*EndpointSlice, ipv6 bool) []datapath.Backend {
	var ready, fallback []datapath.Backend
	for _, s := range eps {
		if s.IPv6 != ipv6 {
			continue
		}
		for _, p := range s.Ports {
			if p.Name != sp.Name || p.Proto != sp.Proto || p.Port == 0 {
				continue
			}
			for _, ep := range s.Endpoints {
				b := datapath.Backend{Addr: netip.AddrPortFrom(ep.Addr, p.Port), Proto: p.Proto}
				switch {
				case ep.Ready:
					ready = append(ready, b)
				case ep.Serving && ep.Terminating:
					fallback = append(fallback, b)
				}
			}
		}
	}
	if len(ready) == 0 {
		ready = fallback
	}
	return sortUnique(ready)
}

func sortUnique(bes []datapath.Backend) []datapath.Backend {
	slices.SortFunc(bes, func(a, b datapath.Backend) int {
		if c := a.Addr.Compare(b.Addr); c != 0 {
			return c
		}
		return int(a.Proto) - int(b.Proto)
	})
	return slices.Compact(bes)
}
