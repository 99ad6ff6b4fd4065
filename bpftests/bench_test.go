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
	// The way back for each path, as an entry whose "backend" is the
	// frontend so the liveness check holds.
	front := e.service(nodePort(30999, datapath.TCP), be(nodeIP4, 30080, true), be(client4, 40001, true))
	ct, err := e.dp.Conntrack()
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range ct {
		back := c
		back.Src, back.Dst, back.NewSrc, back.NewDst = c.NewSrc, c.NewDst, c.Src, c.Dst
		back.Backend = front[0]
		if c.NAT {
			back.Backend = front[1] // replies are not checked; kept for symmetry
		}
		if c.Flow.Egress || c.NAT {
			continue // checked by the reply paths below: translated back the same way
		}
		back.Expires = c.Expires
		if err := e.dp.PutConntrack(back); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range ct {
		if !c.Egress && !c.NAT {
			continue
		}
		back := c
		back.Src, back.Dst, back.NewSrc, back.NewDst = c.NewSrc, c.NewDst, c.Src, c.Dst
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
	base := per["no-service"]
	for _, p := range paths {
		b.ReportMetric(float64(per[p.name].Nanoseconds()), p.name+"-ns/pkt")
		if p.name != "no-service" && base > 0 {
			b.ReportMetric(float64(per[p.name])/float64(base), p.name+"/no-service")
		}
	}
	b.Log(fmt.Sprintf("ns/packet: %v", per))
}
