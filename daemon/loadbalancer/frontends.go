package loadbalancer

import (
	"net/netip"
	"slices"

	"github.com/hivelet/hivelet/datapath"
)

// Node is what the load balancer needs to know about the node it runs on.
type Node struct {
	Name  string
	Zone  string       // label topology.kubernetes.io/zone
	Addrs []netip.Addr // InternalIP and ExternalIP addresses, for NodePorts
}

// Frontends computes the datapath entries of a Service from its
// EndpointSlices, with kube-proxy's semantics for connections that start
// on this node (node may be nil when unknown):
//   - one frontend per (address, port): every ClusterIP, external IP and
//     load-balancer ingress IP, and every node address with the NodePort,
//     for each spec.ports entry;
//   - backends come from slices of the frontend's address family whose
//     port has the same name and protocol as the service port; addresses
//     repeated across slices count once;
//   - ready endpoints are used; when none is ready, serving endpoints that
//     are terminating are used instead, so connections drain gracefully;
//   - ClusterIPs of a Service with internalTrafficPolicy Local use only
//     this node's endpoints (none: connections are refused);
//   - otherwise topology hints narrow the choice to endpoints meant for
//     this node, or else for its zone, when every endpoint carries hints
//     and some match (trafficDistribution PreferSameNode / PreferClose);
//   - external IPs, load-balancer IPs and NodePorts reached from the node
//     itself use all endpoints, whatever externalTrafficPolicy says, as
//     kube-proxy does for node-local traffic;
//   - for clients outside the node (the TC datapath), a Service with
//     externalTrafficPolicy Local gets a second, ScopeLocal entry per
//     external frontend with this node's endpoints only; load-balancer
//     IPs carry loadBalancerSourceRanges; Maglev Services say so.
//
// Backends on this node are marked Local.
//
// A pod's hostPorts (TypeHostPort) are served by hostPortFrontends.
func Frontends(svc *Service, eps []*EndpointSlice, node *Node) []Entry {
	if svc.Type == TypeHostPort {
		return hostPortFrontends(svc, node)
	}
	var out []Entry
	alg := datapath.AlgRandom
	if svc.Maglev {
		alg = datapath.AlgMaglev
	}
	for _, sp := range svc.Ports {
		var cluster, internal, local [2][]datapath.Backend // by family: 0 IPv4, 1 IPv6
		for fam := range 2 {
			cluster[fam] = selectBackends(sp, eps, fam == 1, node, false)
			internal[fam] = cluster[fam]
			if svc.InternalLocal {
				internal[fam] = selectBackends(sp, eps, fam == 1, node, true)
			}
			if svc.ExternalLocal {
				local[fam] = selectBackends(sp, eps, fam == 1, node, true)
			}
		}
		add := func(addrs []netip.Addr, port uint16, flags datapath.ServiceFlags, bes [2][]datapath.Backend) {
			external := flags != datapath.FlagClusterIP
			var ranges []netip.Prefix
			if flags == datapath.FlagLoadBalancer && len(svc.SourceRanges) > 0 {
				flags |= datapath.FlagSourceRanges
				ranges = svc.SourceRanges
			}
			for _, a := range addrs {
				fam := 0
				if a.Is6() {
					fam = 1
				}
				e := Entry{
					Frontend:        datapath.Frontend{Addr: a, Port: port, Proto: sp.Proto, Scope: datapath.ScopeExternal},
					Flags:           flags,
					Backends:        bes[fam],
					AffinityTimeout: svc.AffinityTimeout,
					SourceRanges:    ranges,
				}
				if external {
					e.Algorithm = alg
				}
				if external && svc.ExternalLocal {
					e.Flags |= datapath.FlagExtLocal
					l := e
					l.Frontend.Scope = datapath.ScopeLocal
					l.Flags &^= datapath.FlagExtLocal
					l.Backends = local[fam]
					out = append(out, e, l)
					continue
				}
				out = append(out, e)
			}
		}
		add(svc.ClusterIPs, sp.Port, datapath.FlagClusterIP, internal)
		add(svc.ExternalIPs, sp.Port, datapath.FlagExternalIP, cluster)
		add(svc.LoadBalancerIPs, sp.Port, datapath.FlagLoadBalancer, cluster)
		if sp.NodePort != 0 && node != nil {
			add(node.Addrs, sp.NodePort, datapath.FlagNodePort, cluster)
		}
	}
	return out
}

// HealthOf is what svc's healthCheckNodePort reports: its endpoints on
// this node that are ready (kube-proxy counts those of any port).
func HealthOf(svc *Service, eps []*EndpointSlice, node *Node) *Health {
	if svc.HealthCheckNodePort == 0 {
		return nil
	}
	h := &Health{Port: svc.HealthCheckNodePort}
	seen := map[netip.Addr]bool{}
	for _, s := range eps {
		for i := range s.Endpoints {
			ep := &s.Endpoints[i]
			if node != nil && ep.NodeName == node.Name && ep.Ready && !seen[ep.Addr] {
				seen[ep.Addr] = true
				h.LocalEndpoints++
			}
		}
	}
	return h
}

// candidate is an endpoint usable for one service port.
type candidate struct {
	b  datapath.Backend
	ep *Endpoint
}

// selectBackends picks the backends of one service port and family; local
// keeps only this node's endpoints.
func selectBackends(sp ServicePort, eps []*EndpointSlice, ipv6 bool, node *Node, local bool) []datapath.Backend {
	n := 0
	for _, s := range eps {
		if s.IPv6 == ipv6 {
			n += len(s.Endpoints)
		}
	}
	if n == 0 {
		return nil
	}
	// Usually every endpoint is ready: one allocation instead of growing.
	ready, fallback := make([]candidate, 0, n), []candidate(nil)
	for _, s := range eps {
		if s.IPv6 != ipv6 {
			continue
		}
		for _, p := range s.Ports {
			if p.Name != sp.Name || p.Proto != sp.Proto || p.Port == 0 {
				continue
			}
			for i := range s.Endpoints {
				ep := &s.Endpoints[i]
				if local && (node == nil || ep.NodeName != node.Name) {
					continue
				}
				isLocal := node != nil && ep.NodeName != "" && ep.NodeName == node.Name
				c := candidate{datapath.Backend{Addr: netip.AddrPortFrom(ep.Addr, p.Port), Proto: p.Proto, Local: isLocal}, ep}
				switch {
				case ep.Ready:
					ready = append(ready, c)
				case ep.Serving && ep.Terminating:
					fallback = append(fallback, c)
				}
			}
		}
	}
	if len(ready) == 0 {
		return sortUnique(fallback) // draining: topology does not apply
	}
	if !local {
		ready = byTopology(ready, node)
	}
	return sortUnique(ready)
}

// byTopology applies topology hints the way kube-proxy does: only when
// every endpoint has hints of a kind, and only when some match this node
// (node hints first, then zone hints); otherwise all endpoints stay.
func byTopology(cs []candidate, node *Node) []candidate {
	if node == nil {
		return cs
	}
	if picked := hinted(cs, (*Endpoint).forNodes, node.Name); picked != nil {
		return picked
	}
	if picked := hinted(cs, (*Endpoint).forZones, node.Zone); picked != nil {
		return picked
	}
	return cs
}

func hinted(cs []candidate, hints func(*Endpoint) []string, want string) []candidate {
	if want == "" {
		return nil
	}
	var picked []candidate
	for _, c := range cs {
		h := hints(c.ep)
		if len(h) == 0 {
			return nil // one endpoint without hints: hints are not in use
		}
		if slices.Contains(h, want) {
			picked = append(picked, c)
		}
	}
	return picked
}

func sortUnique(cs []candidate) []datapath.Backend {
	if len(cs) == 0 {
		return nil
	}
	bes := make([]datapath.Backend, len(cs))
	for i, c := range cs {
		bes[i] = c.b
	}
	slices.SortFunc(bes, func(a, b datapath.Backend) int {
		if c := a.Addr.Compare(b.Addr); c != 0 {
			return c
		}
		return int(a.Proto) - int(b.Proto)
	})
	return slices.Compact(bes)
}
