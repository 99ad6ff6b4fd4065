package datapath

import (
	"fmt"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// HostProgram names one of the per-packet programs, for BPF_PROG_RUN.
type HostProgram int

const (
	HostIngress HostProgram = iota
	HostEgress
	PodOut // a pod's veth, host-side ingress
	PodIn  // a pod's veth, host-side egress
)

func (d *Datapath) hostProg(p HostProgram) (*ebpf.Program, error) {
	if err := d.loadTC(); err != nil {
		return nil, err
	}
	switch p {
	case HostEgress:
		return d.host.HlHostEgress, nil
	case PodOut:
		return d.pod.HlPodOut, nil
	case PodIn:
		return d.pod.HlPodIn, nil
	}
	return d.host.HlHostIngress, nil
}

// Verdicts the TC programs return.
const (
	VerdictPass     = 0
	VerdictDrop     = 2
	VerdictRedirect = 7
)

// RunHost runs a per-packet program once over an Ethernet frame with
// BPF_PROG_RUN, as if it arrived on (ingress) or left through (egress)
// device ifindex (0: loopback), and returns its verdict and the frame as
// the program left it.
func (d *Datapath) RunHost(p HostProgram, ifindex int, frame []byte) (uint32, []byte, error) {
	out := make([]byte, len(frame)+256)
	opts := &ebpf.RunOptions{Data: frame, DataOut: out, Repeat: 1}
	if ifindex != 0 {
		opts.Context = skbContext(ifindex)
	}
	prog, err := d.hostProg(p)
	if err != nil {
		return 0, nil, err
	}
	ret, err := prog.Run(opts)
	if err != nil {
		return 0, nil, fmt.Errorf("run program: %w", err)
	}
	return ret, opts.DataOut, nil
}

// BenchHost runs a program repeat times over frame in the kernel, on the
// loopback device, and returns the mean time per run. The frame is reset
// before every run, so the same packet is measured each time.
func (d *Datapath) BenchHost(p HostProgram, frame []byte, repeat int, reset func()) (time.Duration, error) {
	prog, err := d.hostProg(p)
	if err != nil {
		return 0, err
	}
	_, per, err := prog.Benchmark(frame, repeat, reset)
	if err != nil {
		return 0, fmt.Errorf("run program: %w", err)
	}
	return per, nil
}

// skbContext is a __sk_buff with only the fields BPF_PROG_RUN accepts for
// TC programs set: the device the packet is on.
func skbContext(ifindex int) []byte {
	// struct __sk_buff is 192 bytes; ifindex at 40, ingress_ifindex at 36.
	ctx := make([]byte, 192)
	putU32(ctx[40:], uint32(ifindex))
	putU32(ctx[36:], uint32(ifindex))
	return ctx
}

func putU32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

// FlushConntrack empties the CT and SNAT maps: every tracked flow picks
// a backend again on its next packet.
func (d *Datapath) FlushConntrack() error {
	pp, err := d.perPacket()
	if err != nil {
		return err
	}
	for _, m := range []*ebpf.Map{pp.ct, pp.nat, pp.affx} {
		var k []byte
		keys := [][]byte{}
		it := m.Iterate()
		var v []byte
		for it.Next(&k, &v) {
			keys = append(keys, append([]byte(nil), k...))
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("flush %s: %w", mapName(m), err)
		}
		for _, key := range keys {
			_ = m.Delete(key)
		}
	}
	return nil
}

// BenchFloor measures, like BenchHost, a TC program that only returns
// (floor "empty") and one that calls a single helper, bpf_ktime_get_ns
// (floor "helper"): what BPF_PROG_RUN and one helper call cost on this
// machine, to read the real programs' figures against.
func BenchFloor(frame []byte, repeat int) (empty, helper time.Duration, err error) {
	for i, insns := range []asm.Instructions{
		{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		{asm.FnKtimeGetNs.Call(), asm.Mov.Imm(asm.R0, 0), asm.Return()},
	} {
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SchedCLS, Instructions: insns, License: "Dual BSD/GPL"})
		if err != nil {
			return 0, 0, fmt.Errorf("load floor program: %w", err)
		}
		_, per, err := prog.Benchmark(frame, repeat, nil)
		prog.Close()
		if err != nil {
			return 0, 0, fmt.Errorf("run floor program: %w", err)
		}
		if i == 0 {
			empty = per
		} else {
			helper = per
		}
	}
	return empty, helper, nil
}
