package datapath

import (
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ct_dir values.
const (
	ctIngress = 0
	ctEgress  = 1
	ctPodOut  = 2
	ctPodIn   = 3
)

// CT entry flags, mirroring enum ct_flags.
const (
	CTFlagSNAT    = 1 << 0
	CTFlagClosing = 1 << 1
	CTFlagSeenACK = 1 << 2
	CTFlagReply   = 1 << 3
	CTFlagPod     = 1 << 4
	CTFlagHairpin = 1 << 5
)

// Flow is a tracked tuple as the program that looks it up sees it.
type Flow struct {
	Src, Dst netip.AddrPort
	Proto    L4Proto
	Egress   bool
}

func (f Flow) String() string {
	dir := "in"
	if f.Egress {
		dir = "out"
	}
	return fmt.Sprintf("%s %s -> %s/%s", dir, f.Src, f.Dst, f.Proto)
}

// CTEntry is one connection-tracking or SNAT entry.
type CTEntry struct {
	Flow
	// NewSrc and NewDst are what a matching packet's addresses become.
	NewSrc, NewDst netip.AddrPort
	Backend        BackendID
	RevNat         RevNatID
	Expires        uint32 // seconds of CLOCK_MONOTONIC
	Flags          uint8
	// NAT is set for entries of the SNAT map.
	NAT bool
}

func addrOfMapped(b [16]byte) netip.Addr { return netip.AddrFrom16(b).Unmap() }

func ctFromMap(k sockCtKey, v sockCtEntry, nat bool) CTEntry {
	return CTEntry{
		Flow: Flow{
			Src:    netip.AddrPortFrom(addrOfMapped(k.Saddr.Addr), ntohs(k.Sport)),
			Dst:    netip.AddrPortFrom(addrOfMapped(k.Daddr.Addr), ntohs(k.Dport)),
			Proto:  L4Proto(k.Proto),
			Egress: k.Dir == ctEgress,
		},
		NewSrc:  netip.AddrPortFrom(addrOfMapped(v.Saddr.Addr), ntohs(v.Sport)),
		NewDst:  netip.AddrPortFrom(addrOfMapped(v.Daddr.Addr), ntohs(v.Dport)),
		Backend: BackendID(v.BackendId),
		RevNat:  RevNatID(v.RevNatIndex),
		Expires: v.Expires,
		Flags:   v.Flags,
		NAT:     nat,
	}
}

// Conntrack lists the CT and SNAT entries.
func (d *Datapath) Conntrack() ([]CTEntry, error) {
	pp, err := d.perPacket()
	if err != nil {
		return nil, err
	}
	return readConntrack(pp.ct, pp.nat)
}

func readConntrack(ct, nat *ebpf.Map) ([]CTEntry, error) {
	var out []CTEntry
	for _, m := range []struct {
		m   *ebpf.Map
		nat bool
	}{{ct, false}, {nat, true}} {
		ks, vs, err := dumpAll[sockCtKey, sockCtEntry](m.m, nil)
		if err != nil {
			return nil, err
		}
		for i := range ks {
			out = append(out, ctFromMap(ks[i], vs[i], m.nat))
		}
	}
	return out, nil
}

// MonotonicSeconds is the clock CT expiry uses (bpf_ktime_get_ns).
func MonotonicSeconds() uint32 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint32(ts.Sec)
}

// CTGCStats describes one garbage collection pass.
type CTGCStats struct {
	CT, NAT int // entries alive after the pass
	Deleted int
	CTMax   int
	NATMax  int
}

// GCConntrack deletes expired CT and SNAT entries. The programs already
// ignore expired entries; collecting them keeps the LRU maps from
// evicting live flows to make room.
func (d *Datapath) GCConntrack() (CTGCStats, error) {
	pp, err := d.perPacket()
	if err != nil {
		return CTGCStats{}, fmt.Errorf("conntrack GC: %w", err)
	}
	now := MonotonicSeconds()
	st := CTGCStats{CTMax: int(pp.ct.MaxEntries()), NATMax: int(pp.nat.MaxEntries())}
	for _, m := range []*ebpf.Map{pp.ct, pp.nat} {
		ks, vs, err := dumpAll[sockCtKey, sockCtEntry](m, nil)
		if err != nil {
			return st, fmt.Errorf("conntrack GC: %w", err)
		}
		var expired []sockCtKey
		for i := range ks {
			if vs[i].Expires < now {
				expired = append(expired, ks[i])
			}
		}
		if err := deleteAll(m, expired); err != nil {
			return st, fmt.Errorf("conntrack GC: %w", err)
		}
		st.Deleted += len(expired)
		if m == pp.ct {
			st.CT = len(ks) - len(expired)
		} else {
			st.NAT = len(ks) - len(expired)
		}
	}
	return st, nil
}

// PutConntrack writes one CT (or, with NAT set, SNAT) entry. The programs
// write entries themselves; this is for tools and benchmarks that need a
// flow tracked in a given state.
func (d *Datapath) PutConntrack(e CTEntry) error {
	k := sockCtKey{Sport: htons(e.Src.Port()), Dport: htons(e.Dst.Port()), Proto: uint8(e.Proto)}
	if e.Egress {
		k.Dir = ctEgress
	}
	k.Saddr.Addr = v6MappedOf(e.Src.Addr())
	k.Daddr.Addr = v6MappedOf(e.Dst.Addr())
	v := sockCtEntry{Sport: htons(e.NewSrc.Port()), Dport: htons(e.NewDst.Port()), BackendId: uint32(e.Backend),
		RevNatIndex: uint32(e.RevNat), Expires: e.Expires, Flags: e.Flags}
	v.Saddr.Addr = v6MappedOf(e.NewSrc.Addr())
	v.Daddr.Addr = v6MappedOf(e.NewDst.Addr())
	pp, err := d.perPacket()
	if err != nil {
		return err
	}
	m := pp.ct
	if e.NAT {
		m = pp.nat
	}
	if err := m.Put(&k, &v); err != nil {
		return fmt.Errorf("write %s entry %s: %w", mapName(m), e.Flow, err)
	}
	return nil
}
