package datapath_test

import (
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/hivelet/hivelet/datapath"
	"github.com/hivelet/hivelet/test/testnet"
)

// sockEnv is a node namespace with three serving pods, the socket LB
// loaded with pins in a private bpffs and attached to a child cgroup that
// the test process has entered.
type sockEnv struct {
	node  *testnet.Node
	dp    *datapath.Datapath
	lb    datapath.LBMap
	bpffs string
	cg    string
}

const backendPort = 8080

func newSockEnv(t *testing.T) *sockEnv {
	t.Helper()
	testnet.RequireRoot(t)
	e := &sockEnv{node: testnet.NewNode(t, 3), bpffs: filepath.Join(t.TempDir(), "bpffs")}
	for _, p := range e.node.Pods {
		p.Serve(t, backendPort)
	}
	e.cg = testnet.NewCgroup(t)
	e.dp = e.load(t)
	t.Cleanup(func() {
		if err := datapath.Cleanup(e.bpffs); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	testnet.EnterCgroup(t, e.cg)
	return e
}

func (e *sockEnv) load(t *testing.T) *datapath.Datapath {
	t.Helper()
	dp, err := datapath.Load(datapath.Config{BPFFSDir: e.bpffs, Sizes: datapath.MapSizes{Services: 1024, Backends: 1024, RevNat: 1024, SockRevNat: 1024}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Close() })
	if err := dp.AttachCgroup(e.cg); err != nil {
		t.Fatal(err)
	}
	e.lb = dp.LBMap()
	return dp
}

// program writes one service per frontend with the given pods as backends.
func (e *sockEnv) program(t *testing.T, revnat datapath.RevNatID, f datapath.Frontend, pods []*testnet.Pod) {
	t.Helper()
	ch := &datapath.Changes{}
	svc := datapath.Service{Frontend: f, RevNat: revnat}
	for i, p := range pods {
		addr := p.IPv4
		if f.Addr.Is6() {
			addr = p.IPv6
		}
		id := datapath.BackendID(uint32(revnat)*10 + uint32(i) + 1) // below the array size (1024)
		ch.UpsertBackends = append(ch.UpsertBackends, datapath.BackendEntry{ID: id, Backend: datapath.Backend{Addr: netip.AddrPortFrom(addr, backendPort), Proto: f.Proto}})
		svc.Backends = append(svc.Backends, id)
	}
	ch.UpsertRevNats = append(ch.UpsertRevNats, datapath.RevNatEntry{ID: revnat, Addr: netip.AddrPortFrom(f.Addr, f.Port)})
	ch.UpsertServices = []datapath.ServiceUpdate{{Service: svc}}
	if err := e.lb.Apply(ch); err != nil {
		t.Fatal(err)
	}
}

func names(e *sockEnv) map[string]bool {
	m := map[string]bool{}
	for _, p := range e.node.Pods {
		m[p.Name] = true
	}
	return m
}

// spread calls try n times and checks every pod answered and every answer
// came from the VIP.
func spread(t *testing.T, e *sockEnv, vip netip.AddrPort, try func() (testnet.Reply, error)) {
	t.Helper()
	seen := map[string]int{}
	e.node.NS.Must(t, func() error {
		for i := 0; i < 60; i++ {
			r, err := try()
			if err != nil {
				return err
			}
			if r.Peer != vip {
				t.Errorf("peer = %s, want the VIP %s", r.Peer, vip)
			}
			seen[r.Name]++
		}
		return nil
	})
	for name := range names(e) {
		if seen[name] == 0 {
			t.Errorf("backend %s never answered: %v", name, seen)
		}
	}
}

func TestPrivilegedSocketLB(t *testing.T) {
	e := newSockEnv(t)
	vip4 := netip.MustParseAddr("10.96.0.10")
	vip6 := netip.MustParseAddr("fd00:10:96::10")
	for i, fam := range []struct {
		name string
		vip  netip.Addr
	}{{"IPv4", vip4}, {"IPv6", vip6}} {
		tcp := netip.AddrPortFrom(fam.vip, 80)
		udp := netip.AddrPortFrom(fam.vip, 53)
		e.program(t, datapath.RevNatID(10*i+1), datapath.Frontend{Addr: fam.vip, Port: 80, Proto: datapath.TCP}, e.node.Pods)
		e.program(t, datapath.RevNatID(10*i+2), datapath.Frontend{Addr: fam.vip, Port: 53, Proto: datapath.UDP}, e.node.Pods)

		t.Run(fam.name+"/TCP connect reaches every backend, getpeername shows the VIP", func(t *testing.T) {
			spread(t, e, tcp, func() (testnet.Reply, error) { return testnet.Dial("tcp", tcp) })
		})
		t.Run(fam.name+"/connected UDP reaches every backend, getpeername shows the VIP", func(t *testing.T) {
			spread(t, e, udp, func() (testnet.Reply, error) { return testnet.Dial("udp", udp) })
		})
		t.Run(fam.name+"/unconnected UDP replies come from the VIP", func(t *testing.T) {
			spread(t, e, udp, func() (testnet.Reply, error) { return testnet.SendTo(udp) })
		})
	}

	t.Run("IPv6 socket to a v4-mapped VIP uses the IPv4 service", func(t *testing.T) {
		mapped := netip.AddrPortFrom(netip.AddrFrom16(vip4.As16()), 80)
		e.node.NS.Must(t, func() error {
			r, err := testnet.DialMapped(mapped)
			if err != nil {
				return err
			}
			if !names(e)[r.Name] || r.Peer != mapped {
				t.Errorf("got %+v, want a backend name and peer %s", r, mapped)
			}
			return nil
		})
	})

	t.Run("a service without backends refuses connections", func(t *testing.T) {
		empty4 := netip.AddrPortFrom(netip.MustParseAddr("10.96.0.99"), 80)
		e.program(t, 50, datapath.Frontend{Addr: empty4.Addr(), Port: 80, Proto: datapath.TCP}, nil)
		e.program(t, 51, datapath.Frontend{Addr: empty4.Addr(), Port: 80, Proto: datapath.UDP}, nil)
		e.node.NS.Must(t, func() error {
			if _, err := testnet.Dial("tcp", empty4); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("TCP connect: err = %v, want ECONNREFUSED", err)
			}
			if _, err := testnet.SendTo(empty4); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("UDP sendto: err = %v, want ECONNREFUSED", err)
			}
			return nil
		})
	})

	t.Run("session affinity keeps a namespace on one backend while it is a member", func(t *testing.T) {
		vip := netip.AddrPortFrom(netip.MustParseAddr("10.96.0.20"), 80)
		f := datapath.Frontend{Addr: vip.Addr(), Port: 80, Proto: datapath.TCP}
		write := func(pods []int, remove []int) {
			ch := &datapath.Changes{UpsertRevNats: []datapath.RevNatEntry{{ID: 70, Addr: vip}}}
			svc := datapath.Service{Frontend: f, RevNat: 70, AffinityTimeout: 300}
			for _, i := range pods {
				id := datapath.BackendID(700 + i)
				ch.UpsertBackends = append(ch.UpsertBackends, datapath.BackendEntry{ID: id,
					Backend: datapath.Backend{Addr: netip.AddrPortFrom(e.node.Pods[i].IPv4, backendPort), Proto: datapath.TCP}})
				ch.UpsertAffinity = append(ch.UpsertAffinity, datapath.AffinityMatch{Backend: id, RevNat: 70})
				svc.Backends = append(svc.Backends, id)
			}
			for _, i := range remove {
				ch.DeleteAffinity = append(ch.DeleteAffinity, datapath.AffinityMatch{Backend: datapath.BackendID(700 + i), RevNat: 70})
			}
			ch.UpsertServices = []datapath.ServiceUpdate{{Service: svc, PrevSlots: 3}}
			if err := e.lb.Apply(ch); err != nil {
				t.Fatal(err)
			}
		}
		sticky := func() map[string]int {
			seen := map[string]int{}
			e.node.NS.Must(t, func() error {
				for i := 0; i < 30; i++ {
					r, err := testnet.Dial("tcp", vip)
					if err != nil {
						return err
					}
					seen[r.Name]++
				}
				return nil
			})
			return seen
		}
		write([]int{0, 1, 2}, nil)
		first := sticky()
		if len(first) != 1 {
			t.Fatalf("30 connects with affinity reached %v, want one backend", first)
		}
		var chosen string
		for n := range first {
			chosen = n
		}
		idx := int(chosen[len(chosen)-1]-'0') - 1
		var rest []int
		for i := 0; i < 3; i++ {
			if i != idx {
				rest = append(rest, i)
			}
		}
		write(rest, []int{idx})
		after := sticky()
		if len(after) != 1 || after[chosen] != 0 {
			t.Errorf("after %s left the service: %v, want one other backend", chosen, after)
		}
	})

	t.Run("a reload keeps maps, links and open connections", func(t *testing.T) {
		vip := netip.AddrPortFrom(vip4, 80)
		var conn net.Conn
		e.node.NS.Must(t, func() error {
			var err error
			conn, err = net.Dial("tcp", vip.String())
			return err
		})
		defer conn.Close()
		e.dp.Close()
		e.dp = e.load(t)
		st, err := e.lb.Dump(nil)
		if err != nil {
			t.Fatal(err)
		}
		if s := st.Services[datapath.Frontend{Addr: vip4, Port: 80, Proto: datapath.TCP}]; s == nil || len(s.Backends) != 3 {
			t.Fatalf("service after reload = %+v, want 3 backends", s)
		}
		spread(t, e, vip, func() (testnet.Reply, error) { return testnet.Dial("tcp", vip) })
		buf := make([]byte, 16)
		_ = conn.SetReadDeadline(deadline())
		if n, err := conn.Read(buf); err != nil || n == 0 {
			t.Fatalf("connection opened before the reload: read %d, %v", n, err)
		}
	})
}
