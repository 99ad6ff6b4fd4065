package datapath

import (
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

// HostConfig is what the per-packet programs need to know about the node.
type HostConfig struct {
	// SNAT4 and SNAT6 are the node addresses flows to backends on other
	// nodes are SNATed to; invalid: that family is not SNATed (such
	// flows are dropped and counted).
	SNAT4, SNAT6 netip.Addr
	// NATPortMin..NATPortMax is the SNAT port range. The default stays
	// above the kernel's ephemeral range so the node's own sockets never
	// collide with it.
	NATPortMin, NATPortMax uint16
}

// Default SNAT port range: above net.ipv4.ip_local_port_range's default
// 32768–60999.
const (
	DefaultNATPortMin = 61000
	DefaultNATPortMax = 65535
)

func v6MappedOf(a netip.Addr) [16]byte {
	if !a.IsValid() {
		return [16]byte{}
	}
	if a.Is4() {
		return netip.AddrFrom16(a.As16()).As16() // As16 of a v4 address is v4-mapped
	}
	return a.As16()
}

// SetHostConfig writes the node's SNAT addresses and port range.
func (d *Datapath) SetHostConfig(hc HostConfig) error {
	if hc.NATPortMin == 0 && hc.NATPortMax == 0 {
		hc.NATPortMin, hc.NATPortMax = DefaultNATPortMin, DefaultNATPortMax
	}
	if hc.NATPortMax < hc.NATPortMin || hc.NATPortMin < 1024 {
		return fmt.Errorf("set host config: SNAT port range %d-%d is invalid (want 1024 <= min <= max)", hc.NATPortMin, hc.NATPortMax)
	}
	if hc.SNAT4.IsValid() && !hc.SNAT4.Is4() || hc.SNAT6.IsValid() && !hc.SNAT6.Is6() {
		return fmt.Errorf("set host config: SNAT addresses %s, %s are of the wrong family", hc.SNAT4, hc.SNAT6)
	}
	var v sockHostConfig
	if err := d.objs.HlHostCfg.Lookup(uint32(0), &v); err != nil {
		return fmt.Errorf("read host config: %w", err)
	}
	v.MaglevSize, v.NatPortMin, v.NatPortMax = d.cfg.maglevSize(), hc.NATPortMin, hc.NATPortMax
	v.Snat4.Addr = v6MappedOf(hc.SNAT4)
	v.Snat6.Addr = v6MappedOf(hc.SNAT6)
	if err := d.objs.HlHostCfg.Put(uint32(0), &v); err != nil {
		return fmt.Errorf("write host config: %w", err)
	}
	return nil
}

// initHostConfig fills in the Maglev size and a port range when the pinned
// config is new, keeping addresses an earlier run wrote.
func (d *Datapath) initHostConfig() error {
	var v sockHostConfig
	if err := d.objs.HlHostCfg.Lookup(uint32(0), &v); err != nil {
		return fmt.Errorf("read host config: %w", err)
	}
	if v.MaglevSize == d.cfg.maglevSize() && v.NatPortMin != 0 {
		return nil
	}
	v.MaglevSize = d.cfg.maglevSize()
	if v.NatPortMin == 0 {
		v.NatPortMin, v.NatPortMax = DefaultNATPortMin, DefaultNATPortMax
	}
	if err := d.objs.HlHostCfg.Put(uint32(0), &v); err != nil {
		return fmt.Errorf("write host config: %w", err)
	}
	return nil
}

// Stat names a per-packet counter; mirrors enum hl_stat.
type Stat uint32

const (
	StatXlateNew Stat = iota
	StatXlateEstablished
	StatXlateICMP
	StatDropNoBackend
	StatDropSourceRange
	StatDropFragment
	StatDropCTFull
	StatDropNATPorts
	StatDropNoRoute
	StatMalformed
	statMax
)

var statNames = [...]string{
	"xlate_new", "xlate_established", "xlate_icmp_error", "drop_no_backend", "drop_source_range",
	"drop_fragment", "drop_ct_full", "drop_nat_ports_exhausted", "drop_no_route", "malformed",
}

func (s Stat) String() string {
	if int(s) < len(statNames) {
		return statNames[s]
	}
	return fmt.Sprintf("stat(%d)", uint32(s))
}

// AllStats lists every counter in order.
func AllStats() []Stat {
	out := make([]Stat, statMax)
	for i := range out {
		out[i] = Stat(i)
	}
	return out
}

// Stats sums the per-CPU packet counters.
func (d *Datapath) Stats() (map[Stat]uint64, error) { return readStats(d.objs.HlStats) }

func readStats(m *ebpf.Map) (map[Stat]uint64, error) {
	out := make(map[Stat]uint64, statMax)
	for s := range statMax {
		var per []uint64
		if err := m.Lookup(uint32(s), &per); err != nil {
			return nil, fmt.Errorf("read counter %s: %w", s, err)
		}
		var sum uint64
		for _, v := range per {
			sum += v
		}
		out[s] = sum
	}
	return out, nil
}

// SetSocketLBHostOnly limits socket LB to the network namespace with
// cookie netns (the host's; 0 lifts the limit). Pods are then served per
// packet by the programs AttachPod puts on their veths.
func (d *Datapath) SetSocketLBHostOnly(netns uint64) error {
	var v sockHostConfig
	if err := d.objs.HlHostCfg.Lookup(uint32(0), &v); err != nil {
		return fmt.Errorf("read host config: %w", err)
	}
	v.SockHostNetns = netns
	if err := d.objs.HlHostCfg.Put(uint32(0), &v); err != nil {
		return fmt.Errorf("write host config: %w", err)
	}
	return nil
}
