package reconciler

import (
	"fmt"
	"net/netip"
	"slices"

	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
	"github.com/hivelet/hivelet/datapath"
)

// realized is the reconciler's belief about the maps' content. It is
// rebuilt from a dump after any failure, so it never has to be rolled back.
type realized struct {
	// fes holds every frontend with entries in the services map.
	fes map[datapath.Frontend]feState
	// entries counts services-map entries: 1 + slots per frontend.
	entries int

	backendByAddr map[beKey]datapath.BackendID
	backends      map[datapath.BackendID]backendRef
	// unused are backends whose references dropped to zero; collected
	// at the end of a sync unless something took them again.
	unused  map[datapath.BackendID]struct{}
	revnats map[datapath.RevNatID]netip.AddrPort
	// affm is the affinity-match map's content.
	affm map[datapath.AffinityMatch]bool

	// Ids are allocated from next* below limit* (array sizes); ids above
	// high* were never handed out, so they are free without a look-up
	// (a cold start allocates every id that way).
	nextBackend, limitBackend, highBackend uint32
	nextRevNat, limitRevNat, highRevNat    uint32
	// exhausted is set when an id could not be allocated: the sync fails
	// with it.
	exhausted error
	// freedRevNats are reverse-NAT ids a sync deletes (at the end of its
	// batch): not reused before the next sync.
	freedRevNats map[datapath.RevNatID]struct{}
}

// feState is what the maps hold for one frontend, and who claims it.
type feState struct {
	// owner is the Service that wants this frontend; zero for entries
	// found in the maps that no Service has claimed since.
	owner    lb.ServiceName
	revnat   datapath.RevNatID
	flags    datapath.ServiceFlags
	complete bool   // slot 0 is present
	affinity uint32 // session affinity timeout; 0 without
	alg      datapath.Algorithm
	// ranges are the source ranges written; nil after a dump (unknown),
	// so a full sync after a restart writes them again.
	ranges []netip.Prefix
	// slots is how many backend slots may be in the map, leftovers
	// included, so deletes cover them all.
	slots    int
	backends []datapath.BackendID
}

// same reports whether the maps already hold exactly this service.
func (fe *feState) same(revnat datapath.RevNatID, e *lb.Entry, ids []datapath.BackendID) bool {
	if !fe.complete || fe.revnat != revnat || fe.flags != e.Flags || fe.affinity != e.AffinityTimeout ||
		fe.alg != e.Algorithm || !slices.Equal(fe.ranges, e.SourceRanges) ||
		fe.slots != len(ids) || len(fe.backends) != len(ids) {
		return false
	}
	for i := range ids {
		if fe.backends[i] != ids[i] {
			return false
		}
	}
	return true
}

type backendRef struct {
	k    beKey
	refs int32
}

// beKey is a Backend without pointers (netip.Addr holds one): a third of
// the size, cheap to hash, and nothing for the garbage collector to scan
// in tables of hundreds of thousands.
type beKey struct {
	addr  [16]byte
	port  uint16
	proto datapath.L4Proto
	is6   bool
}

func keyOf(b datapath.Backend) beKey {
	a := b.Addr.Addr()
	return beKey{addr: a.As16(), port: b.Addr.Port(), proto: b.Proto, is6: a.Is6()}
}

// fromDump adopts what the maps hold: ids are reused, never reassigned,
// so a restart rewrites nothing that is already right. sizeHint is the
// expected number of frontends.
func fromDump(st *datapath.State, sizeHint int, limitBackend, limitRevNat uint32) *realized {
	nf := max(sizeHint, len(st.Services))
	nb := max(3*sizeHint, len(st.Backends))
	r := &realized{
		fes:           make(map[datapath.Frontend]feState, nf),
		backendByAddr: make(map[beKey]datapath.BackendID, nb),
		backends:      make(map[datapath.BackendID]backendRef, nb),
		unused:        map[datapath.BackendID]struct{}{},
		revnats:       make(map[datapath.RevNatID]netip.AddrPort, nf),
		affm:          st.Affinity,
		limitBackend:  limitBackend,
		limitRevNat:   limitRevNat,
	}
	for id, b := range st.Backends {
		k := keyOf(b)
		r.backends[id] = backendRef{k: k}
		// Two ids for one address (only after damage): keep the lower,
		// the other loses its references and is deleted.
		if cur, ok := r.backendByAddr[k]; !ok || id < cur {
			r.backendByAddr[k] = id
		}
		r.highBackend = max(r.highBackend, uint32(id))
	}
	for id, ap := range st.RevNats {
		r.revnats[id] = ap
		r.highRevNat = max(r.highRevNat, uint32(id))
	}
	// Allocation goes on after the highest id in use.
	r.nextBackend, r.nextRevNat = nextAfter(r.highBackend, limitBackend), nextAfter(r.highRevNat, limitRevNat)
	for f, ds := range st.Services {
		fe := feState{slots: max(len(ds.Backends), ds.MaxSlot)}
		if !ds.Incomplete {
			// Without slot 0 the frontend counts as absent: its slots
			// get rewritten or deleted.
			fe.complete, fe.revnat, fe.flags, fe.affinity, fe.alg = true, ds.RevNat, ds.Flags, ds.AffinityTimeout, ds.Algorithm
			fe.backends = append([]datapath.BackendID(nil), ds.Backends...)
		}
		r.fes[f] = fe
		r.entries += 1 + fe.slots
		for _, id := range fe.backends {
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
	k := keyOf(b)
	if id, ok := r.backendByAddr[k]; ok {
		ref := r.backends[id]
		ref.refs++
		r.backends[id] = ref
		return id
	}
	v, ok := allocate(&r.nextBackend, r.limitBackend, &r.highBackend, len(r.backends),
		func(v uint32) bool { _, used := r.backends[datapath.BackendID(v)]; return used })
	if !ok {
		r.exhausted = fmt.Errorf("allocate a backend id: all %d in use: %w", r.limitBackend-1, datapath.ErrMapFull)
		return 0 // an empty entry: the datapath finds no backend there
	}
	id := datapath.BackendID(v)
	r.backends[id] = backendRef{k: k, refs: 1}
	r.backendByAddr[k] = id
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
func (r *realized) revNatFor(f datapath.Frontend, have feState, ch *datapath.Changes) datapath.RevNatID {
	ap := netip.AddrPortFrom(f.Addr, f.Port)
	if have.complete && have.revnat != 0 && r.revnats[have.revnat] == ap {
		return have.revnat
	}
	// Freed ids count as taken until the sync ends.
	v, ok := allocate(&r.nextRevNat, r.limitRevNat, &r.highRevNat, len(r.revnats)+len(r.freedRevNats),
		func(v uint32) bool {
			_, used := r.revnats[datapath.RevNatID(v)]
			_, freed := r.freedRevNats[datapath.RevNatID(v)]
			return used || freed
		})
	if !ok {
		r.exhausted = fmt.Errorf("allocate a reverse-NAT id: all %d in use: %w", r.limitRevNat-1, datapath.ErrMapFull)
		return 0
	}
	id := datapath.RevNatID(v)
	r.revnats[id] = ap
	ch.UpsertRevNats = append(ch.UpsertRevNats, datapath.RevNatEntry{ID: id, Addr: ap})
	return id
}

func nextAfter(high, limit uint32) uint32 {
	if uint64(high)+1 >= uint64(limit) {
		return 1
	}
	return high + 1
}

// allocate returns the next unused id in [1, limit) from *next, wrapping
// around; inUse ids are taken, none above *high. ok is false when every
// id is taken.
func allocate(next *uint32, limit uint32, high *uint32, inUse int, used func(uint32) bool) (id uint32, ok bool) {
	if uint64(inUse) >= uint64(limit)-1 {
		return 0, false
	}
	for {
		v := *next
		*next++
		if *next >= limit {
			*next = 1
		}
		switch {
		case v == 0 || v >= limit:
		case v > *high:
			*high = v
			return v, true
		case !used(v):
			return v, true
		}
	}
}

// syncAffinity makes the affinity-match map hold exactly the (backend,
// service) pairs of want (nil without affinity), given the pairs of have.
func (r *realized) syncAffinity(have *feState, revnat datapath.RevNatID, want []datapath.BackendID, ch *datapath.Changes) {
	keep := make(map[datapath.AffinityMatch]bool, len(want))
	for _, id := range want {
		m := datapath.AffinityMatch{Backend: id, RevNat: revnat}
		keep[m] = true
		if !r.affm[m] {
			r.affm[m] = true
			ch.UpsertAffinity = append(ch.UpsertAffinity, m)
		}
	}
	if have == nil || have.affinity == 0 {
		return
	}
	for _, id := range have.backends {
		m := datapath.AffinityMatch{Backend: id, RevNat: have.revnat}
		if !keep[m] && r.affm[m] {
			delete(r.affm, m)
			ch.DeleteAffinity = append(ch.DeleteAffinity, m)
		}
	}
}
