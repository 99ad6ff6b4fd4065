package datapath

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

func backendFlags(b Backend) uint8 {
	if b.Local {
		return backendLocal
	}
	return 0
}

// srcRangeKey is the LPM key of prefix p for rev-NAT id: the id's 32 bits
// then the address bits, IPv4 v4-mapped.
func srcRangeKey(id RevNatID, p netip.Prefix) sockLbSrcrangeKey {
	p = p.Masked()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	k := sockLbSrcrangeKey{Prefixlen: uint32(32 + bits), RevNatId: uint32(id)}
	k.Addr.Addr = v6MappedOf(p.Addr())
	return k
}

func (m *bpfLBMap) putExtras(ups []ServiceUpdate) error {
	var keys []sockLbSrcrangeKey
	for i := range ups {
		s := &ups[i].Service
		if s.Flags&FlagSourceRanges != 0 {
			for _, p := range s.SourceRanges {
				keys = append(keys, srcRangeKey(s.RevNat, p))
			}
		}
		if s.Algorithm == AlgMaglev && len(s.Maglev) > 0 {
			if err := m.putMaglev(s.RevNat, s.Maglev); err != nil {
				return err
			}
		}
	}
	for i := range keys {
		if err := m.srcr.Put(&keys[i], uint8(1)); err != nil {
			return fmt.Errorf("update %s: %w", mapName(m.srcr), err)
		}
	}
	return nil
}

// putMaglev writes a service's table into a new inner map and swaps it in
// whole: a reader sees the old table or the new one, never a mix.
func (m *bpfLBMap) putMaglev(id RevNatID, table []BackendID) error {
	if m.maglev == nil {
		return fmt.Errorf("write Maglev table: map not open for writing")
	}
	inner, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: uint32(len(table))})
	if err != nil {
		return fmt.Errorf("create Maglev table for rev-NAT %d (%d slots): %w", id, len(table), err)
	}
	defer inner.Close()
	keys := make([]uint32, len(table))
	vals := make([]uint32, len(table))
	for i, b := range table {
		keys[i], vals[i] = uint32(i), uint32(b)
	}
	if err := putAll(inner, keys, vals); err != nil {
		return fmt.Errorf("fill Maglev table for rev-NAT %d: %w", id, err)
	}
	if err := m.maglev.Put(uint32(id), inner); err != nil {
		return fmt.Errorf("update %s: %w (the table size must match the agent's --bpf-lb-maglev-table-size)", mapName(m.maglev), err)
	}
	if m.maglevIDs != nil {
		m.maglevIDs[uint32(id)] = struct{}{}
	}
	return nil
}

// maglevTables returns the rev-NAT ids that have a Maglev table in the
// kernel, reading the map's keys when they are not known yet. Deletes go
// to those only: a cold sync of 10k Services would otherwise spend 10k
// syscalls deleting tables that never existed.
func (m *bpfLBMap) maglevTables() (map[uint32]struct{}, error) {
	if m.maglevIDs != nil {
		return m.maglevIDs, nil
	}
	ids := map[uint32]struct{}{}
	var k, next uint32
	key := any(nil) // nil asks for the first key
	for {
		err := m.maglev.NextKey(key, &next)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", mapName(m.maglev), err)
		}
		ids[next] = struct{}{}
		k = next
		key = &k
	}
	m.maglevIDs = ids
	return ids, nil
}

func (m *bpfLBMap) deleteExtras(ups []ServiceUpdate, gone []RevNatID) error {
	if err := m.deleteMaglev(ups, gone); err != nil {
		return err
	}
	// Few services have source ranges: walking the trie is cheaper than
	// remembering every prefix, and an empty trie needs no walk.
	var k sockLbSrcrangeKey
	if err := m.srcr.NextKey(nil, &k); errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	}
	stale := make(map[uint32]bool, len(gone)+len(ups))
	for _, id := range gone {
		stale[uint32(id)] = true
	}
	wanted := map[sockLbSrcrangeKey]bool{}
	for i := range ups {
		s := &ups[i].Service
		stale[uint32(s.RevNat)] = true
		if s.Flags&FlagSourceRanges != 0 {
			for _, p := range s.SourceRanges {
				wanted[srcRangeKey(s.RevNat, p)] = true
			}
		}
	}
	if len(stale) == 0 {
		return nil
	}
	var drop []sockLbSrcrangeKey
	var v uint8
	it := m.srcr.Iterate()
	for it.Next(&k, &v) {
		if stale[k.RevNatId] && !wanted[k] {
			drop = append(drop, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read %s: %w", mapName(m.srcr), err)
	}
	for i := range drop {
		if err := m.srcr.Delete(&drop[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete from %s: %w", mapName(m.srcr), err)
		}
	}
	return nil
}

// deleteMaglev drops the tables of removed rev-NAT ids and of updated
// services that no longer use Maglev.
func (m *bpfLBMap) deleteMaglev(ups []ServiceUpdate, gone []RevNatID) error {
	if m.maglev == nil {
		return nil
	}
	tables, err := m.maglevTables()
	if err != nil {
		return err
	}
	drop := func(id RevNatID) error {
		if _, ok := tables[uint32(id)]; !ok {
			return nil
		}
		if err := m.maglev.Delete(uint32(id)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete from %s: %w", mapName(m.maglev), err)
		}
		delete(tables, uint32(id))
		return nil
	}
	for _, id := range gone {
		if err := drop(id); err != nil {
			return err
		}
	}
	for i := range ups {
		if s := &ups[i].Service; s.Algorithm != AlgMaglev || len(s.Maglev) == 0 {
			if err := drop(s.RevNat); err != nil {
				return err
			}
		}
	}
	return nil
}
