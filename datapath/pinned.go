package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
)

// ErrNotLoaded is returned when no hivelet maps are pinned at a path.
var ErrNotLoaded = errors.New("hivelet datapath not loaded")

// PinnedLB is a read-only view of the pinned LB maps, for the CLI: it
// works whether or not an agent is running.
type PinnedLB struct {
	LBMap
	maps []*ebpf.Map
}

// OpenPinnedLB opens the LB maps pinned under bpffs for reading. It returns
// an error wrapping ErrNotLoaded when they are not there.
func OpenPinnedLB(bpffs string) (*PinnedLB, error) {
	p := &PinnedLB{}
	for _, n := range lbViewMaps {
		// The backend and reverse-NAT arrays are opened writable only
		// because the kernel maps no read-only handle shared, and Dump
		// reads them through a (read-only) mapping; the view writes nothing.
		array := n == sockMapHlLb4Be || n == sockMapHlLb6Be || n == sockMapHlLb4Rnat || n == sockMapHlLb6Rnat
		m, err := ebpf.LoadPinnedMap(filepath.Join(bpffs, n), &ebpf.LoadPinOptions{ReadOnly: !array})
		if err != nil {
			p.Close()
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("open %s: %w (is an agent running with --bpffs %s?)", filepath.Join(bpffs, n), ErrNotLoaded, bpffs)
			}
			return nil, fmt.Errorf("open pinned map %s: %w", n, err)
		}
		p.maps = append(p.maps, m)
	}
	p.LBMap = lbView(p.maps)
	return p, nil
}

// lbViewMaps are the maps a view of the LB maps opens, in lbView's order.
var lbViewMaps = []string{sockMapHlLb4Svc, sockMapHlLb6Svc, sockMapHlLb4Be, sockMapHlLb6Be, sockMapHlLb4Rnat, sockMapHlLb6Rnat, sockMapHlLbAffm}

// lbView is a reader of the LB maps opened as lbViewMaps lists them.
func lbView(ms []*ebpf.Map) *bpfLBMap {
	return &bpfLBMap{svc4: ms[0], svc6: ms[1], be4: ms[2], be6: ms[3], rn4: ms[4], rn6: ms[5], affm: ms[6]}
}

// Close releases the map handles.
func (p *PinnedLB) Close() error {
	var errs []error
	for _, m := range p.maps {
		errs = append(errs, m.Close())
	}
	return errors.Join(errs...)
}

// Lookup reads one frontend's service entry and its backends, in slot
// order, without dumping the maps: cheap enough to poll. It returns nil
// when the frontend is not programmed.
func (p *PinnedLB) Lookup(f Frontend) ([]Backend, error) {
	m := p.LBMap.(*bpfLBMap)
	var master sockLbService
	var err error
	if f.Addr.Is4() {
		err = m.svc4.Lookup(lb4Key(f, 0), &master)
	} else {
		err = m.svc6.Lookup(lb6Key(f, 0), &master)
	}
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", f, err)
	}
	out := make([]Backend, 0, master.Count)
	for slot := 1; slot <= int(master.Count); slot++ {
		var v sockLbService
		if f.Addr.Is4() {
			err = m.svc4.Lookup(lb4Key(f, slot), &v)
		} else {
			err = m.svc6.Lookup(lb6Key(f, slot), &v)
		}
		if err != nil {
			return nil, fmt.Errorf("look up %s slot %d: %w", f, slot, err)
		}
		if f.Addr.Is4() {
			var be sockLb4Backend
			if err := m.be4.Lookup(v.BackendId, &be); err != nil || be.Port == 0 {
				return nil, fmt.Errorf("look up backend %d: %w", v.BackendId, emptyAsMissing(err))
			}
			out = append(out, Backend{Addr: netip.AddrPortFrom(addr4FromMap(be.Address), ntohs(be.Port)), Proto: L4Proto(be.Proto), Local: be.Flags&backendLocal != 0})
		} else {
			var be sockLb6Backend
			if err := m.be6.Lookup(v.BackendId, &be); err != nil || be.Port == 0 {
				return nil, fmt.Errorf("look up backend %d: %w", v.BackendId, emptyAsMissing(err))
			}
			out = append(out, Backend{Addr: netip.AddrPortFrom(netip.AddrFrom16(be.Address.Addr), ntohs(be.Port)), Proto: L4Proto(be.Proto), Local: be.Flags&backendLocal != 0})
		}
	}
	return out, nil
}

// emptyAsMissing reports an empty array entry (err nil) as a missing key.
func emptyAsMissing(err error) error {
	if err == nil {
		return ebpf.ErrKeyNotExist
	}
	return err
}
