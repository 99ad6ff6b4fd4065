package bpftests

import (
	"fmt"
	"testing"
	"time"

	"github.com/hivelet/hivelet/datapath"
)

// BenchmarkHostPaths measures the main per-packet paths with BPF_PROG_RUN
// (1M runs each, in the kernel) and reports each against a packet for no
// service measured in the same run.
//
// BPF_PROG_RUN hands the program the same buffer on every repeat, so a
// translated packet comes back translated. For the established paths the
// benchmark therefore tracks the translated tuple too, translating back:
// every run is a CT hit that rewrites addresses, ports and checksums, as
// a real established packet is.
func BenchmarkHostPaths(b *testing.B) {
	e := newEnv(b)
	client := ap(client4, 40000)
	e.service(nodePort(30080, datapath.TCP), be(local4, 8080, true))
	e.service(nodePort(30081, datapath.TCP), be(remote4, 8080, false))
	// Enough services that lookups are not into a near-empty table.
	for i := range 500 {
		e.service(nodePort(uint16(31000+i), datapath.TCP), be(local4, uint16(9000+i), true))
	}
	prime := func(prog datapath.HostProgram, frame []byte) *Parsed {
		var out []byte
		e.ns.Must(b, func() error {
			var err error
			_, out, err = e.dp.RunHost(prog, e.ifindex, frame)
			return err
		})
		p, err := Parse(out)
		if err != nil {
			b.Fatal(err)
		}
		return p
	}
	prime(datapath.HostIngress, tcp(client, ap(nodeIP4, 30080), SYN).Frame())
	snat := prime(datapath.HostIngress, tcp(ap(client4, 40001), ap(nodeIP4, 30081), SYN).Frame())
	// The way back for each path: an entry translating the translated
	// packet back, always in the CT map, with a backend whose address is
	// where it translates to so the liveness check holds.
	ct, err := e.dp.Conntrack()
	if err != nil {
		b.Fatal(err)
	}
	for i, c := range ct {
		back := c
		back.Src, back.Dst, back.NewSrc, back.NewDst = c.NewSrc, c.NewDst, c.Src, c.Dst
		back.NAT = false
		if !c.Egress {
			ids := e.service(nodePort(uint16(32000+i), datapath.TCP), be(back.NewDst.Addr(), back.NewDst.Port(), true))
			back.Backend = ids[0]
		}
		if err := e.dp.PutConntrack(back); err != nil {
			b.Fatal(err)
		}
	}
	paths := []struct {
		name  string
		prog  datapath.HostProgram
		frame []byte
	}{
		{"no-service", datapath.HostIngress, tcp(client, ap(nodeIP4, 22), ACK).Frame()},
		{"established-in", datapath.HostIngress, tcp(client, ap(nodeIP4, 30080), ACK).Frame()},
		{"established-reply-out", datapath.HostEgress, tcp(ap(local4, 8080), client, ACK).Frame()},
		{"snat-reply-in", datapath.HostIngress, tcp(ap(remote4, 8080), snat.Src, ACK).Frame()},
	}
	// Three interleaved rounds, best of each: this machine is noisy.
	const runs, rounds = 1_000_000, 3
	per := map[string]time.Duration{}
	for range b.N {
		for range rounds {
			for _, p := range paths {
				e.ns.Must(b, func() error {
					d, err := e.dp.BenchHost(p.prog, p.frame, runs, nil)
					if old, ok := per[p.name]; !ok || d < old {
						per[p.name] = d
					}
					return err
				})
			}
		}
	}
	var empty, helper time.Duration
	e.ns.Must(b, func() error {
		var err error
		empty, helper, err = datapath.BenchFloor(paths[0].frame, runs)
		return err
	})
	b.ReportMetric(float64(empty.Nanoseconds()), "floor-empty-ns/pkt")
	b.ReportMetric(float64(helper.Nanoseconds()), "floor-one-helper-ns/pkt")
	base := per["no-service"]
	for _, p := range paths {
		b.ReportMetric(float64(per[p.name].Nanoseconds()), p.name+"-ns/pkt")
		if p.name != "no-service" && base > 0 {
			b.ReportMetric(float64(per[p.name])/float64(base), p.name+"/no-service")
		}
	}
	b.Log(fmt.Sprintf("ns/packet: %v", per))
}
