package bpftests

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/hivelet/hivelet/datapath"
)

const (
	pass     = datapath.VerdictPass
	dropped  = datapath.VerdictDrop
	redirect = datapath.VerdictRedirect
)

func nodePort(port uint16, proto datapath.L4Proto) datapath.Service {
	return datapath.Service{Frontend: datapath.Frontend{Addr: nodeIP4, Port: port, Proto: proto}, Flags: datapath.FlagNodePort}
}

func be(a netip.Addr, port uint16, local bool) datapath.Backend {
	return datapath.Backend{Addr: ap(a, port), Proto: datapath.TCP, Local: local}
}

func TestPrivilegedHostNodePort(t *testing.T) {
	e := newEnv(t)
	client := ap(client4, 40000)

	t.Run("TCP to a local backend keeps the client address", func(t *testing.T) {
		front := ap(nodeIP4, 30080)
		e.service(nodePort(30080, datapath.TCP), be(local4, 8080, true))
		v, p, _ := e.run(t, datapath.HostIngress, tcp(client, front, SYN).Frame())
		expectVerdict(t, v, pass)
		expectFlow(t, p, client, ap(local4, 8080))
		if p.TTL != 64 {
			t.Errorf("TTL %d: a packet delivered through the stack keeps it", p.TTL)
		}
		// The SYN-ACK leaves through the device and must look like the frontend's.
		v, p, _ = e.run(t, datapath.HostEgress, tcp(ap(local4, 8080), client, SYN|ACK).Frame())
		expectVerdict(t, v, pass)
		expectFlow(t, p, front, client)
		v, p, _ = e.run(t, datapath.HostIngress, tcp(client, front, ACK).Frame())
		expectVerdict(t, v, pass)
		expectFlow(t, p, client, ap(local4, 8080))
	})

	t.Run("TCP to a remote backend is SNATed and forwarded", func(t *testing.T) {
		front := ap(nodeIP4, 30081)
		client := ap(client4, 40001)
		e.service(nodePort(30081, datapath.TCP), be(remote4, 8080, false))
		v, p, _ := e.run(t, datapath.HostIngress, tcp(client, front, SYN).Frame())
		expectVerdict(t, v, redirect)
		if p.Src.Addr() != nodeIP4 || p.Src.Port() < datapath.DefaultNATPortMin || p.Dst != ap(remote4, 8080) {
			t.Fatalf("packet %s -> %s, want %s:[%d-%d] -> %s", p.Src, p.Dst, nodeIP4, datapath.DefaultNATPortMin, datapath.DefaultNATPortMax, ap(remote4, 8080))
		}
		if p.TTL != 63 || !bytes.Equal(p.DstMAC, macNext) || !bytes.Equal(p.SrcMAC, e.devMAC) {
			t.Errorf("forwarded with TTL %d, %s -> %s; want 63, %s -> %s", p.TTL, p.SrcMAC, p.DstMAC, e.devMAC, macNext)
		}
		natPort := p.Src.Port()
		v, p, _ = e.run(t, datapath.HostIngress, tcp(ap(remote4, 8080), ap(nodeIP4, natPort), SYN|ACK).Frame())
		expectVerdict(t, v, redirect)
		expectFlow(t, p, front, client)
		if !bytes.Equal(p.DstMAC, macClient) {
			t.Errorf("reply sent to %s, want the client's gateway %s", p.DstMAC, macClient)
		}
		// The next client packet reuses the same port.
		_, p, _ = e.run(t, datapath.HostIngress, tcp(client, front, ACK).Frame())
		if p.Src != ap(nodeIP4, natPort) {
			t.Errorf("established packet SNATed to %s, want %s", p.Src, ap(nodeIP4, natPort))
		}
		var natEntries int
		ct, err := e.dp.Conntrack()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range ct {
			if c.NAT && c.Dst == ap(nodeIP4, natPort) && c.NewDst == client {
				natEntries++
			}
		}
		if natEntries != 1 {
			t.Errorf("%d SNAT entries for port %d, want 1: %v", natEntries, natPort, ct)
		}
	})

	t.Run("UDP, with and without a checksum", func(t *testing.T) {
		front := ap(nodeIP4, 30053)
		e.service(nodePort(30053, datapath.UDP), datapath.Backend{Addr: ap(local4, 53), Proto: datapath.UDP, Local: true})
		v, p, _ := e.run(t, datapath.HostIngress, udp(ap(client4, 5353), front).Frame())
		expectVerdict(t, v, pass)
		expectFlow(t, p, ap(client4, 5353), ap(local4, 53))
		pk := udp(ap(client4, 5354), front)
		pk.NoUDPChecksum = true
		_, p, _ = e.run(t, datapath.HostIngress, pk.Frame())
		expectFlow(t, p, ap(client4, 5354), ap(local4, 53))
		if p.UDPChecksum != 0 {
			t.Errorf("UDP checksum %#x, want 0 kept", p.UDPChecksum)
		}
		// An empty datagram is valid and translated.
		pk = udp(ap(client4, 5355), front)
		pk.Payload = nil
		_, p, _ = e.run(t, datapath.HostIngress, pk.Frame())
		expectFlow(t, p, ap(client4, 5355), ap(local4, 53))
		_, p, _ = e.run(t, datapath.HostEgress, udp(ap(local4, 53), ap(client4, 5353)).Frame())
		expectFlow(t, p, front, ap(client4, 5353))
	})

	t.Run("IPv6 NodePort, local and remote backends", func(t *testing.T) {
		front := ap(nodeIP6, 30080)
		client := ap(client6, 40000)
		e.service(datapath.Service{Frontend: datapath.Frontend{Addr: nodeIP6, Port: 30080, Proto: datapath.TCP}, Flags: datapath.FlagNodePort},
			be(local6, 8080, true))
		v, p, _ := e.run(t, datapath.HostIngress, tcp(client, front, SYN).Frame())
		expectVerdict(t, v, pass)
		expectFlow(t, p, client, ap(local6, 8080))
		_, p, _ = e.run(t, datapath.HostEgress, tcp(ap(local6, 8080), client, SYN|ACK).Frame())
		expectFlow(t, p, front, client)

		front = ap(nodeIP6, 30081)
		e.service(datapath.Service{Frontend: datapath.Frontend{Addr: nodeIP6, Port: 30081, Proto: datapath.TCP}, Flags: datapath.FlagNodePort},
			be(remote6, 8080, false))
		v, p, _ = e.run(t, datapath.HostIngress, tcp(client, front, SYN).Frame())
		expectVerdict(t, v, redirect)
		if p.Src.Addr() != nodeIP6 || p.Dst != ap(remote6, 8080) || p.TTL != 63 {
			t.Fatalf("packet %s -> %s hop limit %d", p.Src, p.Dst, p.TTL)
		}
		v, p, _ = e.run(t, datapath.HostIngress, tcp(ap(remote6, 8080), p.Src, SYN|ACK).Frame())
		expectVerdict(t, v, redirect)
		expectFlow(t, p, front, client)
	})

	t.Run("ExternalIP and ClusterIP from outside", func(t *testing.T) {
		ext := netip.MustParseAddr("198.51.100.7")
		e.service(datapath.Service{Frontend: datapath.Frontend{Addr: ext, Port: 80, Proto: datapath.TCP}, Flags: datapath.FlagExternalIP},
			be(local4, 8081, true))
		_, p, _ := e.run(t, datapath.HostIngress, tcp(ap(client4, 41000), ap(ext, 80), SYN).Frame())
		expectFlow(t, p, ap(client4, 41000), ap(local4, 8081))
		// ClusterIPs are for the cluster: a packet from outside is left alone.
		cip := netip.MustParseAddr("10.96.0.10")
		e.service(datapath.Service{Frontend: datapath.Frontend{Addr: cip, Port: 80, Proto: datapath.TCP}}, be(local4, 8082, true))
		in := tcp(ap(client4, 41001), ap(cip, 80), SYN).Frame()
		v, _, out := e.run(t, datapath.HostIngress, in)
		expectVerdict(t, v, pass)
		if !bytes.Equal(in, out) {
			t.Error("ClusterIP packet from outside was rewritten")
		}
	})

	t.Run("traffic for no service is untouched", func(t *testing.T) {
		for _, in := range [][]byte{
			tcp(client, ap(nodeIP4, 22), SYN).Frame(),
			udp(client, ap(local4, 53)).Frame(),
			tcp(ap(client6, 1), ap(nodeIP6, 22), SYN).Frame(),
		} {
			for _, prog := range []datapath.HostProgram{datapath.HostIngress, datapath.HostEgress} {
				v, _, out := e.run(t, prog, in)
				expectVerdict(t, v, pass)
				if !bytes.Equal(in, out) {
					t.Errorf("program %d rewrote a packet for no service", prog)
				}
			}
		}
	})
}

func TestPrivilegedHostPolicies(t *testing.T) {
	e := newEnv(t)

	t.Run("externalTrafficPolicy Local: local backends, client address kept", func(t *testing.T) {
		s := nodePort(30090, datapath.TCP)
		s.Flags |= datapath.FlagExtLocal
		e.service(s, be(remote4, 8080, false), be(local4, 9090, true))
		local := s
		local.Scope, local.Flags = datapath.ScopeLocal, datapath.FlagNodePort
		e.service(local, be(local4, 9090, true))
		for port := uint16(1); port <= 20; port++ {
			v, p, _ := e.run(t, datapath.HostIngress, tcp(ap(client4, port), ap(nodeIP4, 30090), SYN).Frame())
			expectVerdict(t, v, pass)
			expectFlow(t, p, ap(client4, port), ap(local4, 9090))
		}
		// A node without local backends drops.
		s = nodePort(30091, datapath.TCP)
		s.Flags |= datapath.FlagExtLocal
		e.service(s, be(remote4, 8080, false))
		local = s
		local.Scope, local.Flags = datapath.ScopeLocal, datapath.FlagNodePort
		e.service(local)
		if n := e.statDelta(t, datapath.StatDropNoBackend, func() {
			v, _, _ := e.run(t, datapath.HostIngress, tcp(ap(client4, 1), ap(nodeIP4, 30091), SYN).Frame())
			expectVerdict(t, v, dropped)
		}); n != 1 {
			t.Errorf("no-backend drops counted %d, want 1", n)
		}
	})

	t.Run("loadBalancerSourceRanges", func(t *testing.T) {
		lbIP := netip.MustParseAddr("198.51.100.20")
		e.service(datapath.Service{
			Frontend:     datapath.Frontend{Addr: lbIP, Port: 443, Proto: datapath.TCP},
			Flags:        datapath.FlagLoadBalancer | datapath.FlagSourceRanges,
			SourceRanges: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/28"), netip.MustParsePrefix("192.0.2.128/25")},
		}, be(local4, 8443, true))
		for _, c := range []struct {
			client netip.Addr
			ok     bool
		}{{client4, true}, {netip.MustParseAddr("192.0.2.200"), true}, {netip.MustParseAddr("203.0.113.200"), false}, {netip.MustParseAddr("192.0.2.1"), false}} {
			n := e.statDelta(t, datapath.StatDropSourceRange, func() {
				v, p, _ := e.run(t, datapath.HostIngress, tcp(ap(c.client, 50000), ap(lbIP, 443), SYN).Frame())
				if c.ok {
					expectVerdict(t, v, pass)
					expectFlow(t, p, ap(c.client, 50000), ap(local4, 8443))
				} else {
					expectVerdict(t, v, dropped)
				}
			})
			if c.ok == (n != 0) {
				t.Errorf("client %s: source-range drops counted %d", c.client, n)
			}
		}
	})

	t.Run("session affinity for external clients", func(t *testing.T) {
		s := nodePort(30092, datapath.TCP)
		s.AffinityTimeout = 600
		s.Flags |= datapath.FlagAffinity
		e.service(s, be(local4, 7001, true), be(local4, 7002, true), be(local4, 7003, true))
		var first netip.AddrPort
		for port := uint16(100); port < 130; port++ {
			_, p, _ := e.run(t, datapath.HostIngress, tcp(ap(client4, port), ap(nodeIP4, 30092), SYN).Frame())
			if !first.IsValid() {
				first = p.Dst
			}
			if p.Dst != first {
				t.Fatalf("connection %d went to %s, the client's first went to %s", port, p.Dst, first)
			}
		}
	})

	t.Run("Maglev picks from the service's table, the same way every time", func(t *testing.T) {
		s := nodePort(30093, datapath.TCP)
		s.Algorithm = datapath.AlgMaglev
		s.RevNat = 900
		ids := e.service(s, be(local4, 7101, true), be(local4, 7102, true), be(local4, 7103, true))
		// A table naming only the second backend: every flow goes there.
		s.Backends = ids
		s.Maglev = make([]datapath.BackendID, maglevSize)
		for i := range s.Maglev {
			s.Maglev[i] = ids[1]
		}
		e.apply(&datapath.Changes{UpsertServices: []datapath.ServiceUpdate{{Service: s, PrevSlots: 3}}})
		for port := uint16(1); port <= 30; port++ {
			_, p, _ := e.run(t, datapath.HostIngress, tcp(ap(client4, port), ap(nodeIP4, 30093), SYN).Frame())
			if p.Dst != ap(local4, 7102) {
				t.Fatalf("flow %d went to %s, the table names only %s", port, p.Dst, ap(local4, 7102))
			}
		}
		// A mixed table: flows spread, and the choice is a function of the flow.
		for i := range s.Maglev {
			s.Maglev[i] = ids[i%3]
		}
		e.apply(&datapath.Changes{UpsertServices: []datapath.ServiceUpdate{{Service: s, PrevSlots: 3}}})
		pick := func() map[uint16]netip.AddrPort {
			if err := e.dp.FlushConntrack(); err != nil {
				t.Fatal(err)
			}
			got := map[uint16]netip.AddrPort{}
			for port := uint16(1000); port < 1060; port++ {
				_, p, _ := e.run(t, datapath.HostIngress, tcp(ap(client4, port), ap(nodeIP4, 30093), SYN).Frame())
				got[port] = p.Dst
			}
			return got
		}
		a, b := pick(), pick()
		seen := map[netip.AddrPort]bool{}
		for port, dst := range a {
			seen[dst] = true
			if b[port] != dst {
				t.Errorf("flow from port %d went to %s, then to %s", port, dst, b[port])
			}
		}
		if len(seen) != 3 {
			t.Errorf("60 flows used %d backends, want all 3", len(seen))
		}
	})

	t.Run("an established flow keeps its backend until the backend goes", func(t *testing.T) {
		s := nodePort(30094, datapath.TCP)
		ids := e.service(s, be(local4, 7201, true), be(local4, 7202, true))
		client := ap(client4, 60000)
		_, p, _ := e.run(t, datapath.HostIngress, tcp(client, ap(nodeIP4, 30094), SYN).Frame())
		chosen := p.Dst
		// The service grows: the flow stays.
		grown := append(ids, e.service(s, be(local4, 7203, true), be(local4, 7204, true))...)
		s.Backends = grown
		e.apply(&datapath.Changes{UpsertServices: []datapath.ServiceUpdate{{Service: s, PrevSlots: 2}}})
		for range 10 {
			_, p, _ = e.run(t, datapath.HostIngress, tcp(client, ap(nodeIP4, 30094), ACK).Frame())
			if p.Dst != chosen {
				t.Fatalf("established flow moved from %s to %s when backends were added", chosen, p.Dst)
			}
		}
		// Its backend is removed: the next packet goes to one that exists.
		var gone datapath.BackendID
		var keep []datapath.BackendID
		for i, id := range grown {
			if ap(local4, uint16(7201+i)) == chosen {
				gone = id
			} else {
				keep = append(keep, id)
			}
		}
		s.Backends = keep
		e.apply(&datapath.Changes{UpsertServices: []datapath.ServiceUpdate{{Service: s, PrevSlots: len(grown)}}, DeleteBackends: []datapath.BackendID{gone}})
		_, p, _ = e.run(t, datapath.HostIngress, tcp(client, ap(nodeIP4, 30094), ACK).Frame())
		if p.Dst == chosen || p.Dst.Addr() != local4 {
			t.Errorf("after its backend left the flow went to %s", p.Dst)
		}
	})
}

func TestPrivilegedHostICMPErrors(t *testing.T) {
	e := newEnv(t)

	t.Run("port unreachable from a local backend", func(t *testing.T) {
		front := ap(nodeIP4, 30053)
		client := ap(client4, 5353)
		e.service(nodePort(30053, datapath.UDP), datapath.Backend{Addr: ap(local4, 53), Proto: datapath.UDP, Local: true})
		_, p, out := e.run(t, datapath.HostIngress, udp(client, front).Frame())
		expectFlow(t, p, client, ap(local4, 53))
		// The backend answers the translated datagram with an error.
		n := e.statDelta(t, datapath.StatXlateICMP, func() {
			v, p, _ := e.run(t, datapath.HostEgress, ICMP4Error(local4, client4, 3, 3, out[14:]))
			expectVerdict(t, v, pass)
			if p.Src.Addr() != nodeIP4 || p.Dst.Addr() != client4 {
				t.Errorf("error sent %s -> %s, want %s -> %s", p.Src.Addr(), p.Dst.Addr(), nodeIP4, client4)
			}
			if p.Quoted == nil || p.Quoted.Src != client || p.Quoted.Dst != front {
				t.Errorf("error quotes %+v, want %s -> %s", p.Quoted, client, front)
			}
		})
		if n != 1 {
			t.Errorf("ICMP translations counted %d, want 1", n)
		}
	})

	t.Run("fragmentation needed on the way to a remote backend", func(t *testing.T) {
		front := ap(nodeIP4, 30081)
		client := ap(client4, 40002)
		e.service(nodePort(30081, datapath.TCP), be(remote4, 8080, false))
		_, _, out := e.run(t, datapath.HostIngress, tcp(client, front, SYN).Frame())
		router := netip.MustParseAddr("192.168.50.9")
		v, p, _ := e.run(t, datapath.HostIngress, ICMP4Error(router, nodeIP4, 3, 4, out[14:]))
		expectVerdict(t, v, redirect)
		if p.Src.Addr() != router || p.Dst.Addr() != client4 {
			t.Errorf("error sent %s -> %s, want %s -> %s", p.Src.Addr(), p.Dst.Addr(), router, client4)
		}
		if p.Quoted == nil || p.Quoted.Src != client || p.Quoted.Dst != front {
			t.Errorf("error quotes %+v, want %s -> %s", p.Quoted, client, front)
		}
	})

	t.Run("IPv6 packet too big on the way to a remote backend", func(t *testing.T) {
		front := ap(nodeIP6, 30082)
		client := ap(client6, 40003)
		e.service(datapath.Service{Frontend: datapath.Frontend{Addr: nodeIP6, Port: 30082, Proto: datapath.TCP}, Flags: datapath.FlagNodePort},
			be(remote6, 8080, false))
		_, _, out := e.run(t, datapath.HostIngress, tcp(client, front, SYN).Frame())
		router := netip.MustParseAddr("fd00:50::9")
		n := e.statDelta(t, datapath.StatXlateICMP, func() {
			v, p, _ := e.run(t, datapath.HostIngress, ICMP6Error(router, nodeIP6, 2, 0, out[14:]))
			expectVerdict(t, v, redirect)
			if p.Src.Addr() != router || p.Dst.Addr() != client6 {
				t.Errorf("error sent %s -> %s, want %s -> %s", p.Src.Addr(), p.Dst.Addr(), router, client6)
			}
			if p.Quoted == nil || p.Quoted.Src != client || p.Quoted.Dst != front {
				t.Errorf("error quotes %+v, want %s -> %s", p.Quoted, client, front)
			}
		})
		if n != 1 {
			t.Errorf("ICMP translations counted %d, want 1", n)
		}
	})

	t.Run("an error about no tracked flow passes untouched", func(t *testing.T) {
		in := ICMP4Error(netip.MustParseAddr("192.168.50.9"), nodeIP4, 3, 3, udp(ap(nodeIP4, 1), ap(client4, 2)).IP())
		v, _, out := e.run(t, datapath.HostIngress, in)
		expectVerdict(t, v, pass)
		if !bytes.Equal(in, out) {
			t.Error("untracked ICMP error was rewritten")
		}
	})
}

func TestPrivilegedHostMalformed(t *testing.T) {
	e := newEnv(t)
	front := ap(nodeIP4, 30080)
	client := ap(client4, 40000)
	e.service(nodePort(30080, datapath.TCP), be(local4, 8080, true))
	e.service(nodePort(30053, datapath.UDP), datapath.Backend{Addr: ap(local4, 53), Proto: datapath.UDP, Local: true})

	good := tcp(client, front, SYN).Frame()
	badUDP := udp(client, ap(nodeIP4, 30053)).Frame()
	binary.BigEndian.PutUint16(badUDP[14+20+4:], 0) // UDP length 0
	badIHL := bytes.Clone(good)
	badIHL[14] = 0x44
	longIHL := bytes.Clone(good)
	longIHL[14] = 0x4f // 60-byte header in a 45-byte packet
	cases := []struct {
		name    string
		frame   []byte
		verdict uint32
		stat    datapath.Stat
	}{
		{"IHL beyond the packet", longIHL, pass, datapath.StatMalformed},
		{"IHL below 5", badIHL, pass, datapath.StatMalformed},
		{"truncated TCP header", trimIP(good, 14+20+10), pass, datapath.StatMalformed},
		{"UDP length 0", badUDP, pass, datapath.StatMalformed},
		{"total length beyond the frame", good[:len(good)-3], pass, datapath.StatMalformed},
		{"first fragment to a service", Packet{Src: client, Dst: front, Proto: ProtoTCP, TCPFlags: SYN, MoreFragments: true}.Frame(), dropped, datapath.StatDropFragment},
		{"IPv6 payload beyond the frame", tcp(ap(client6, 1), ap(nodeIP6, 30080), SYN).Frame()[:14+40+10], pass, datapath.StatMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := e.statDelta(t, c.stat, func() {
				var v uint32
				e.ns.Must(t, func() error {
					var err error
					v, _, err = e.dp.RunHost(datapath.HostIngress, e.ifindex, c.frame)
					return err
				})
				expectVerdict(t, v, c.verdict)
			})
			if n != 1 {
				t.Errorf("counter %s moved by %d, want 1", c.stat, n)
			}
		})
	}

	t.Run("later fragment passes untouched", func(t *testing.T) {
		in := Packet{Src: client, Dst: front, Proto: ProtoTCP, FragOffset: 100}.Frame()
		v, _, out := e.run(t, datapath.HostIngress, in)
		expectVerdict(t, v, pass)
		if !bytes.Equal(in, out) {
			t.Error("later fragment was rewritten")
		}
	})

	t.Run("IP options are stepped over", func(t *testing.T) {
		pk := tcp(client, front, SYN)
		pk.IPOptions = []byte{0x01, 0x01, 0x01, 0x00} // NOPs and end of list
		v, p, _ := e.run(t, datapath.HostIngress, pk.Frame())
		expectVerdict(t, v, pass)
		expectFlow(t, p, client, ap(local4, 8080))
	})
}

// trimIP cuts a frame to n bytes and fixes the IPv4 total length and
// header checksum, so only the L4 header is short.
func trimIP(frame []byte, n int) []byte {
	f := bytes.Clone(frame[:n])
	binary.BigEndian.PutUint16(f[14+2:], uint16(n-14))
	binary.BigEndian.PutUint16(f[14+10:], 0)
	binary.BigEndian.PutUint16(f[14+10:], ^fold(sum16(f[14:34])))
	return f
}

// A client that reuses a port of an earlier NodePort flow to connect
// straight to the backend must get the backend's replies untranslated.
func TestPrivilegedHostDirectAfterNodePort(t *testing.T) {
	e := newEnv(t)
	client := ap(client4, 45000)
	e.service(nodePort(30080, datapath.TCP), be(local4, 8080, true))
	e.run(t, datapath.HostIngress, tcp(client, ap(nodeIP4, 30080), SYN).Frame())
	e.run(t, datapath.HostIngress, tcp(client, ap(nodeIP4, 30080), RST).Frame())
	// Same port, now to the pod itself.
	_, p, _ := e.run(t, datapath.HostIngress, tcp(client, ap(local4, 8080), SYN).Frame())
	expectFlow(t, p, client, ap(local4, 8080))
	_, p, _ = e.run(t, datapath.HostEgress, tcp(ap(local4, 8080), client, SYN|ACK).Frame())
	expectFlow(t, p, ap(local4, 8080), client)
}
