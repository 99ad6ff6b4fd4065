package reconciler

import (
	"net/netip"

	"github.com/hivelet/hivelet/datapath"
)

// realized is the reconciler's belief about the maps' content. It is
// rebuilt from a dump after any failure, so it never has to be rolled back.
type realized struct {
	services map[datapath.Frontend]*datapath.Service
	// slots is how many backend slots each frontend may have in the map,
	// counting leftovers; deletes cover them all.
	slots map[datapath.Frontend]int

	backendByAddr map[datapath.Backend]datapath.BackendID
	backends      map[datapath.BackendID]backendRef
	// unused are backends whose references dropped to zero; collected
	// at the end of a sync unless something took them again.
	unused  map[datapath.BackendID]struct{}
	revnats map[datapath.RevNatID]netip.AddrPort

	nextBackend uint32
	nextRevNat  uint32
}

type backendRef struct {
	b    datapath.Backend
	refs int
}

// fromDump adopts what the maps hold: ids are reused, never reassigned,
// so a restart rewrites nothing that is already right. sizeHint is the
// expected number of frontends.
func fromDump(st *datapath.State, sizeHint int) *realized {
	nf := max(sizeHint, len(st.Services))
	nb := max(3*sizeHint, len(st.Backends))
	r := &realized{
		services:      make(map[datapath.Frontend]*datapath.Service, nf),
		slots:         make(map[datapath.Frontend]int, nf),
		backendByAddr: make(map[datapath.Backend]datapath.BackendID, nb),
		backends:      make(map[datapath.BackendID]backendRef, nb),
		unused:        map[datapath.BackendID]struct{}{},
		revnats:       make(map[datapath.RevNatID]netip.AddrPort, nf),
		nextBackend:   1,
		nextRevNat:    1,
	}
	for id, b := range st.Backends {
		r.backends[id] = backendRef{b: b}
		// Two ids for one address (only after damage): keep the lower,
		// the other loses its references and is deleted.
		if cur, ok := r.backendByAddr[b]; !ok || id < cur {
			r.backendByAddr[b] = id
		}
		r.nextBackend = max(r.nextBackend, uint32(id)+1)
	}
	for id, ap := range st.RevNats {
		r.revnats[id] = ap
		r.nextRevNat = max(r.nextRevNat, uint32(id)+1)
	}
	for f, ds := range st.Services {
		r.slots[f] = max(len(ds.Backends), ds.MaxSlot)
		if ds.Incomplete {
			continue // no slot 0: treated as absent, its slots get rewritten or deleted
		}
		svc := ds.Service
		svc.Backends = append([]datapath.BackendID(nil), ds.Backends...)
		r.services[f] = &svc
		for _, id := range svc.Backends {
			if ref, ok := r.backends[id]; ok {
				ref.refs++
				r.backends[id] = ref
			}
		}
	}
	for id, ref := range r.backends {
		if ref.refs == 0 {
			r.unused[id] = struct{}{}
		}
	}
	return r
}

// acquireBackend returns the id for b, allocating one when new.
func (r *realized) acquireBackend(b datapath.Backend, ch *datapath.Changes) datapath.BackendID {
	if id, ok := r.backendByAddr[b]; ok {
		ref := r.backends[id]
		ref.refs++
		r.backends[id] = ref
		return id
	}
	id := datapath.BackendID(allocate(&r.nextBackend, func(v uint32) bool { _, used := r.backends[datapath.BackendID(v)]; return used }))
	r.backends[id] = backendRef{b: b, refs: 1}
	r.backendByAddr[b] = id
	ch.UpsertBackends = append(ch.UpsertBackends, datapath.BackendEntry{ID: id, Backend: b})
	return id
}

func (r *realized) releaseBackends(ids []datapath.BackendID) {
	for _, id := range ids {
		if ref, ok := r.backends[id]; ok {
			if ref.refs--; ref.refs <= 0 {
				r.unused[id] = struct{}{}
			}
			r.backends[id] = ref
		}
	}
}

// revNatFor keeps a frontend's reverse-NAT id when it still points at the
// frontend, and allocates one otherwise.
func (r *realized) revNatFor(f datapath.Frontend, have *datapath.Service, ch *datapath.Changes) datapath.RevNatID {
	ap := netip.AddrPortFrom(f.Addr, f.Port)
	if have != nil && have.RevNat != 0 && r.revnats[have.RevNat] == ap {
		return have.RevNat
	}
	id := datapath.RevNatID(allocate(&r.nextRevNat, func(v uint32) bool { _, used := r.revnats[datapath.RevNatID(v)]; return used }))
	r.revnats[id] = ap
	ch.UpsertRevNats = append(ch.UpsertRevNats, datapath.RevNatEntry{ID: id, Addr: ap})
	return id
}

// allocate returns the next unused id from *next, skipping 0 on wrap.
func allocate(next *uint32, used func(uint32) bool) uint32 {
	for {
		v := *next
		*next++
		if *next == 0 {
			*next = 1
		}
		if v != 0 && !used(v) {
			return v
		}
	}
}
