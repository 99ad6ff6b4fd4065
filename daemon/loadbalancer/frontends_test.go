package loadbalancer

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/hivelet/hivelet/datapath"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func be(s string, proto datapath.L4Proto) datapath.Backend {
	return datapath.Backend{Addr: netip.MustParseAddrPort(s), Proto: proto}
}

func localBE(s string, proto datapath.L4Proto) datapath.Backend {
	b := be(s, proto)
	b.Local = true
	return b
}

func ep(addr string, ready, serving, terminating bool) Endpoint {
	return Endpoint{Addr: netip.MustParseAddr(addr), Ready: ready, Serving: serving, Terminating: terminating}
}

func TestFrontends(t *testing.T) {
	web := ServiceName{"default", "web"}
	httpPort := []ServicePort{{Name: "http", Proto: datapath.TCP, Port: 80}}
	httpEP := []EndpointPort{{Name: "http", Proto: datapath.TCP, Port: 8080}}
	fe := func(a string, port uint16, proto datapath.L4Proto) datapath.Frontend {
		return datapath.Frontend{Addr: netip.MustParseAddr(a), Port: port, Proto: proto}
	}
	tests := []struct {
		name string
		svc  Service
		eps  []*EndpointSlice
		node *Node
		want []Entry
	}{
		{
			name: "ready endpoints, sorted and deduplicated across slices",
			svc:  Service{Name: web, ClusterIPs: addrs("10.96.0.10"), Ports: httpPort},
			eps: []*EndpointSlice{
				{Service: web, Ports: httpEP, Endpoints: []Endpoint{ep("10.0.0.3", true, true, false), ep("10.0.0.1", true, true, false)}},
				{Service: web, Ports: httpEP, Endpoints: []Endpoint{ep("10.0.0.1", true, true, false), ep("10.0.0.2", true, true, false)}},
			},
			want: []Entry{{Frontend: fe("10.96.0.10", 80, datapath.TCP), Backends: []datapath.Backend{
				be("10.0.0.1:8080", datapath.TCP), be("10.0.0.2:8080", datapath.TCP), be("10.0.0.3:8080", datapath.TCP)}}},
		},
		{
			name: "not-ready endpoints are left out while any is ready",
			svc:  Service{Name: web, ClusterIPs: addrs("10.96.0.10"), Ports: httpPort},
			eps: []*EndpointSlice{{Service: web, Ports: httpEP, Endpoints: []Endpoint{
				ep("10.0.0.1", true, true, false), ep("10.0.0.2", false, true, true), ep("10.0.0.3", false, false, false)}}},
			want: []Entry{{Frontend: fe("10.96.0.10", 80, datapath.TCP), Backends: []datapath.Backend{be("10.0.0.1:8080", datapath.TCP)}}},
		},
		{
			name: "no ready endpoint: serving terminating ones take over",
			svc:  Service{Name: web, ClusterIPs: addrs("10.96.0.10"), Ports: httpPort},
			eps: []*EndpointSlice{{Service: web, Ports: httpEP, Endpoints: []Endpoint{
				ep("10.0.0.1", false, false, true), ep("10.0.0.2", false, true, true), ep("10.0.0.3", false, true, false)}}},
			want: []Entry{{Frontend: fe("10.96.0.10", 80, datapath.TCP), Backends: []datapath.Backend{be("10.0.0.2:8080", datapath.TCP)}}},
		},
		{
			name: "ports match by name and protocol",
			svc: Service{Name: web, ClusterIPs: addrs("10.96.0.10"), Ports: []ServicePort{
				{Name: "dns", Proto: datapath.UDP, Port: 53}, {Name: "dns-tcp", Proto: datapath.TCP, Port: 53}}},
			eps: []*EndpointSlice{{Service: web, Ports: []EndpointPort{
				{Name: "dns-tcp", Proto: datapath.TCP, Port: 1053}, {Name: "dns", Proto: datapath.UDP, Port: 5353}, {Name: "dns", Proto: datapath.TCP, Port: 9}},
				Endpoints: []Endpoint{ep("10.0.0.1", true, true, false)}}},
			want: []Entry{
				{Frontend: fe("10.96.0.10", 53, datapath.UDP), Backends: []datapath.Backend{be("10.0.0.1:5353", datapath.UDP)}},
				{Frontend: fe("10.96.0.10", 53, datapath.TCP), Backends: []datapath.Backend{be("10.0.0.1:1053", datapath.TCP)}},
			},
		},
		{
			name: "dual-stack: each family gets its own slices",
			svc:  Service{Name: web, ClusterIPs: addrs("10.96.0.10", "fd00::10"), Ports: httpPort},
			eps: []*EndpointSlice{
				{Service: web, Ports: httpEP, Endpoints: []Endpoint{ep("10.0.0.1", true, true, false)}},
				{Service: web, IPv6: true, Ports: httpEP, Endpoints: []Endpoint{ep("fd00::1", true, true, false)}},
			},
			want: []Entry{
				{Frontend: fe("10.96.0.10", 80, datapath.TCP), Backends: []datapath.Backend{be("10.0.0.1:8080", datapath.TCP)}},
				{Frontend: fe("fd00::10", 80, datapath.TCP), Backends: []datapath.Backend{be("[fd00::1]:8080", datapath.TCP)}},
			},
		},
		{
			name: "external and load-balancer IPs are frontends too; no slices means no backends",
			svc:  Service{Name: web, ClusterIPs: addrs("10.96.0.10"), ExternalIPs: addrs("192.0.2.1"), LoadBalancerIPs: addrs("198.51.100.1"), Ports: httpPort},
			want: []Entry{
				{Frontend: fe("10.96.0.10", 80, datapath.TCP)},
				{Frontend: fe("192.0.2.1", 80, datapath.TCP), Flags: datapath.FlagExternalIP},
				{Frontend: fe("198.51.100.1", 80, datapath.TCP), Flags: datapath.FlagLoadBalancer},
			},
		},
	}
	onNode := func(addr, node, zone string, forZones, forNodes []string) Endpoint {
		e := ep(addr, true, true, false)
		e.NodeName, e.Zone = node, zone
		if forZones != nil || forNodes != nil {
			e.Hints = &Hints{ForZones: forZones, ForNodes: forNodes}
		}
		return e
	}
	nodeA := &Node{Name: "node-a", Zone: "zone-a", Addrs: addrs("192.168.1.10", "fd00::a")}
	tests = append(tests, []struct {
		name string
		svc  Service
		eps  []*EndpointSlice
		node *Node
		want []Entry
	}{
		{
			name: "internalTrafficPolicy Local: the ClusterIP uses this node's endpoints, external IPs all",
			svc:  Service{Name: web, ClusterIPs: addrs("10.96.0.10"), ExternalIPs: addrs("192.0.2.1"), Ports: httpPort, InternalLocal: true},
			eps: []*EndpointSlice{{Service: web, Ports: httpEP, Endpoints: []Endpoint{
				onNode("10.0.0.1", "node-a", "", nil, nil), onNode("10.0.0.2", "node-b", "", nil, nil)}}},
			node: nodeA,
			want: []Entry{
				{Frontend: fe("10.96.0.10", 80, datapath.TCP), Backends: []datapath.Backend{localBE("10.0.0.1:8080", datapath.TCP)}},
				{Frontend: fe("192.0.2.1", 80, datapath.TCP), Flags: datapath.FlagExternalIP, Backends: []datapath.Backend{
					localBE("10.0.0.1:8080", datapath.TCP), be("10.0.0.2:8080", datapath.TCP)}},
			},
		},
		{
			name: "internalTrafficPolicy Local without a local endpoint: no backends",
			svc:  Service{Name: web, ClusterIPs: addrs("10.96.0.10"), Ports: httpPort, InternalLocal: true},
			eps:  []*EndpointSlice{{Service: web, Ports: httpEP, Endpoints: []Endpoint{onNode("10.0.0.2", "node-b", "", nil, nil)}}},
			node: nodeA,
			want: []Entry{{Frontend: fe("10.96.0.10", 80, datapath.TCP)}},
		},
		{
			name: "NodePort on every node address of the matching family",
			svc:  Service{Name: web, ClusterIPs: addrs("10.96.0.10"), Ports: []ServicePort{{Name: "http", Proto: datapath.TCP, Port: 80, NodePort: 30080}}},
			eps:  []*EndpointSlice{{Service: web, Ports: httpEP, Endpoints: []Endpoint{ep("10.0.0.1", true, true, false)}}},
			node: nodeA,
			want: []Entry{
				{Frontend: fe("10.96.0.10", 80, datapath.TCP), Backends: []datapath.Backend{be("10.0.0.1:8080", datapath.TCP)}},
				{Frontend: fe("192.168.1.10", 30080, datapath.TCP), Flags: datapath.FlagNodePort, Backends: []datapath.Backend{be("10.0.0.1:8080", datapath.TCP)}},
				{Frontend: fe("fd00::a", 30080, datapath.TCP), Flags: datapath.FlagNodePort},
			},
		},
		{
			name: "zone hints narrow to this zone",
			svc:  Service{Name: web, ClusterIPs: addrs("10.96.0.10"), Ports: httpPort},
			eps: []*EndpointSlice{{Service: web, Ports: httpEP, Endpoints: []Endpoint{
				onNode("10.0.0.1", "node-a", "zone-a", []string{"zone-a"}, nil),
				onNode("10.0.0.2", "node-b", "zone-b", []string{"zone-b"}, nil),
				onNode("10.0.0.3", "node-c", "zone-a", []string{"zone-a"}, nil)}}},
			node: nodeA,
			want: []Entry{{Frontend: fe("10.96.0.10", 80, datapath.TCP), Backends: []datapath.Backend{
				localBE("10.0.0.1:8080", datapath.TCP), be("10.0.0.3:8080", datapath.TCP)}}},
		},
		{
			name: "node hints win over zone hints",
			svc:  Service{Name: web, ClusterIPs: addrs("10.96.0.10"), Ports: httpPort},
			eps: []*EndpointSlice{{Service: web, Ports: httpEP, Endpoints: []Endpoint{
				onNode("10.0.0.1", "node-a", "zone-a", []string{"zone-a"}, []string{"node-a"}),
				onNode("10.0.0.3", "node-c", "zone-a", []string{"zone-a"}, []string{"node-c"})}}},
			node: nodeA,
			want: []Entry{{Frontend: fe("10.96.0.10", 80, datapath.TCP), Backends: []datapath.Backend{localBE("10.0.0.1:8080", datapath.TCP)}}},
		},
		{
			name: "externalTrafficPolicy Local: external frontends get a local-scope twin; the ClusterIP is untouched",
			svc: Service{Name: web, ClusterIPs: addrs("10.96.0.10"), ExternalIPs: addrs("192.0.2.1"),
				Ports: []ServicePort{{Name: "http", Proto: datapath.TCP, Port: 80, NodePort: 30080}}, ExternalLocal: true, Maglev: true},
			eps: []*EndpointSlice{{Service: web, Ports: httpEP, Endpoints: []Endpoint{
				onNode("10.0.0.1", "node-a", "", nil, nil), onNode("10.0.0.2", "node-b", "", nil, nil)}}},
			node: &Node{Name: "node-a", Addrs: addrs("192.168.1.10")},
			want: func() []Entry {
				all := []datapath.Backend{localBE("10.0.0.1:8080", datapath.TCP), be("10.0.0.2:8080", datapath.TCP)}
				local := []datapath.Backend{localBE("10.0.0.1:8080", datapath.TCP)}
				ext := func(addr string, port uint16, flags datapath.ServiceFlags) []Entry {
					f := fe(addr, port, datapath.TCP)
					l := f
					l.Scope = datapath.ScopeLocal
					return []Entry{
						{Frontend: f, Flags: flags | datapath.FlagExtLocal, Backends: all, Algorithm: datapath.AlgMaglev},
						{Frontend: l, Flags: flags, Backends: local, Algorithm: datapath.AlgMaglev},
					}
				}
				out := []Entry{{Frontend: fe("10.96.0.10", 80, datapath.TCP), Backends: all}}
				out = append(out, ext("192.0.2.1", 80, datapath.FlagExternalIP)...)
				return append(out, ext("192.168.1.10", 30080, datapath.FlagNodePort)...)
			}(),
		},
		{
			name: "loadBalancerSourceRanges apply to load-balancer IPs only",
			svc: Service{Name: web, ClusterIPs: addrs("10.96.0.10"), LoadBalancerIPs: addrs("198.51.100.1"), Ports: httpPort,
				SourceRanges: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}},
			want: []Entry{
				{Frontend: fe("10.96.0.10", 80, datapath.TCP)},
				{Frontend: fe("198.51.100.1", 80, datapath.TCP), Flags: datapath.FlagLoadBalancer | datapath.FlagSourceRanges,
					SourceRanges: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}},
			},
		},
		{
			name: "hints are ignored when one endpoint lacks them or none matches",
			svc:  Service{Name: web, ClusterIPs: addrs("10.96.0.10", "fd00::10"), Ports: httpPort},
			eps: []*EndpointSlice{
				{Service: web, Ports: httpEP, Endpoints: []Endpoint{
					onNode("10.0.0.1", "node-b", "zone-b", []string{"zone-b"}, nil), onNode("10.0.0.2", "node-c", "zone-c", nil, nil)}},
				{Service: web, IPv6: true, Ports: httpEP, Endpoints: []Endpoint{
					onNode("fd00::1", "node-b", "zone-b", []string{"zone-b"}, nil), onNode("fd00::2", "node-c", "zone-c", []string{"zone-c"}, nil)}},
			},
			node: nodeA,
			want: []Entry{
				{Frontend: fe("10.96.0.10", 80, datapath.TCP), Backends: []datapath.Backend{be("10.0.0.1:8080", datapath.TCP), be("10.0.0.2:8080", datapath.TCP)}},
				{Frontend: fe("fd00::10", 80, datapath.TCP), Backends: []datapath.Backend{be("[fd00::1]:8080", datapath.TCP), be("[fd00::2]:8080", datapath.TCP)}},
			},
		},
	}...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Frontends(&tt.svc, tt.eps, tt.node)
			for i := range got {
				if len(got[i].Backends) == 0 {
					got[i].Backends = nil
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Frontends():\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}
