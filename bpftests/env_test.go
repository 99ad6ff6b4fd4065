package bpftests

import (
	"net"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/hivelet/hivelet/datapath"
	"github.com/hivelet/hivelet/test/testnet"
)

// The node the programs run on: device v0 carries the node address;
// backends on another node are reached via nextHop, clients via clientGW.
var (
	nodeIP4   = netip.MustParseAddr("192.168.50.1")
	nodeIP6   = netip.MustParseAddr("fd00:50::1")
	nextHop4  = netip.MustParseAddr("192.168.50.2")
	clientGW4 = netip.MustParseAddr("192.168.50.3")
	nextHop6  = netip.MustParseAddr("fd00:50::2")
	clientGW6 = netip.MustParseAddr("fd00:50::3")
	macNext   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x22}
	macClient = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x33}

	client4 = netip.MustParseAddr("203.0.113.10")
	client6 = netip.MustParseAddr("2001:db8:1::10")
	local4  = netip.MustParseAddr("10.244.0.5")
	remote4 = netip.MustParseAddr("10.244.1.7")
	local6  = netip.MustParseAddr("fd00:244::5")
	remote6 = netip.MustParseAddr("fd00:244:1::7")
)

const maglevSize = 251

// env is one loaded datapath in a namespace of its own.
type env struct {
	t       testing.TB
	ns      *testnet.NS
	dp      *datapath.Datapath
	ifindex int
	devMAC  net.HardwareAddr
	nextBE  datapath.BackendID
	nextRN  datapath.RevNatID
}

func newEnv(t testing.TB) *env {
	testnet.RequireRoot(t)
	e := &env{t: t, ns: testnet.NewNS(t, "bpft"), nextBE: 1, nextRN: 1}
	ip := func(args ...string) { e.ns.IP(t, args...) }
	ip("link", "add", "v0", "type", "veth", "peer", "name", "v1")
	ip("link", "set", "v0", "up")
	ip("link", "set", "v1", "up")
	ip("addr", "add", nodeIP4.String()+"/24", "dev", "v0")
	ip("addr", "add", nodeIP6.String()+"/64", "dev", "v0", "nodad")
	for _, n := range []struct {
		dst, via netip.Addr
		mac      net.HardwareAddr
	}{
		{netip.MustParseAddr("10.244.1.0"), nextHop4, macNext},
		{netip.MustParseAddr("203.0.113.0"), clientGW4, macClient},
		{netip.MustParseAddr("fd00:244:1::"), nextHop6, macNext},
		{netip.MustParseAddr("2001:db8:1::"), clientGW6, macClient},
	} {
		bits := 24
		if n.dst.Is6() {
			bits = 64
		}
		ip("route", "add", netip.PrefixFrom(n.dst, bits).String(), "via", n.via.String(), "dev", "v0")
		ip("neigh", "replace", n.via.String(), "lladdr", n.mac.String(), "dev", "v0", "nud", "permanent")
	}
	e.ns.Sysctl(t, "net.ipv4.conf.all.forwarding", "1")
	e.ns.Sysctl(t, "net.ipv6.conf.all.forwarding", "1")
	e.ns.Must(t, func() error {
		ifc, err := net.InterfaceByName("v0")
		if err != nil {
			return err
		}
		e.ifindex, e.devMAC = ifc.Index, ifc.HardwareAddr
		return nil
	})

	bpffs := filepath.Join(t.TempDir(), "bpffs")
	dp, err := datapath.Load(datapath.Config{
		BPFFSDir:        bpffs,
		Sizes:           datapath.MapSizes{Services: 1024, Backends: 1024, RevNat: 1024, SockRevNat: 1024, Affinity: 1024, CT: 4096, NAT: 4096, SrcRanges: 64, Maglev: 64},
		MaglevTableSize: maglevSize,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dp.Close()
		if err := datapath.Cleanup(bpffs); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if err := dp.SetHostConfig(datapath.HostConfig{SNAT4: nodeIP4, SNAT6: nodeIP6}); err != nil {
		t.Fatal(err)
	}
	e.dp = dp
	return e
}

// service programs a frontend with its backends the way the agent's
// reconciler does, and returns the backend ids in order.
func (e *env) service(s datapath.Service, bes ...datapath.Backend) []datapath.BackendID {
	e.t.Helper()
	ch := &datapath.Changes{}
	s.Backends = nil
	for _, b := range bes {
		ch.UpsertBackends = append(ch.UpsertBackends, datapath.BackendEntry{ID: e.nextBE, Backend: b})
		s.Backends = append(s.Backends, e.nextBE)
		if s.AffinityTimeout > 0 {
			ch.UpsertAffinity = append(ch.UpsertAffinity, datapath.AffinityMatch{Backend: e.nextBE, RevNat: e.nextRN})
		}
		e.nextBE++
	}
	if s.RevNat == 0 {
		s.RevNat = e.nextRN
		e.nextRN++
	}
	ch.UpsertRevNats = []datapath.RevNatEntry{{ID: s.RevNat, Addr: netip.AddrPortFrom(s.Addr, s.Port)}}
	ch.UpsertServices = []datapath.ServiceUpdate{{Service: s}}
	if err := e.dp.LBMap().Apply(ch); err != nil {
		e.t.Fatal(err)
	}
	return s.Backends
}

func (e *env) apply(ch *datapath.Changes) {
	e.t.Helper()
	if err := e.dp.LBMap().Apply(ch); err != nil {
		e.t.Fatal(err)
	}
}

// run passes frame through a program on v0 and parses what comes out,
// checking every checksum.
func (e *env) run(t *testing.T, prog datapath.HostProgram, frame []byte) (uint32, *Parsed, []byte) {
	t.Helper()
	var (
		verdict uint32
		out     []byte
	)
	e.ns.Must(t, func() error {
		var err error
		verdict, out, err = e.dp.RunHost(prog, e.ifindex, frame)
		return err
	})
	p, err := Parse(out)
	if err != nil && verdict != datapath.VerdictDrop {
		t.Fatalf("output frame: %v", err)
	}
	return verdict, p, out
}

func (e *env) stats(t *testing.T) map[datapath.Stat]uint64 {
	t.Helper()
	s, err := e.dp.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// statDelta runs fn and returns how much counter s moved.
func (e *env) statDelta(t *testing.T, s datapath.Stat, fn func()) uint64 {
	t.Helper()
	before := e.stats(t)[s]
	fn()
	return e.stats(t)[s] - before
}

func ap(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }

func tcp(src, dst netip.AddrPort, flags uint8) Packet {
	return Packet{Src: src, Dst: dst, Proto: ProtoTCP, TCPFlags: flags, Payload: []byte("hello")}
}

func udp(src, dst netip.AddrPort) Packet {
	return Packet{Src: src, Dst: dst, Proto: ProtoUDP, Payload: []byte("query")}
}

func expectVerdict(t *testing.T, got, want uint32) {
	t.Helper()
	if got != want {
		t.Fatalf("verdict %d, want %d", got, want)
	}
}

func expectFlow(t *testing.T, p *Parsed, src, dst netip.AddrPort) {
	t.Helper()
	if p.Src != src || p.Dst != dst {
		t.Fatalf("packet %s -> %s, want %s -> %s", p.Src, p.Dst, src, dst)
	}
}
