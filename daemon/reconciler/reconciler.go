// Package reconciler brings the load-balancing maps to the desired state
// by diff. It is the only writer of the maps. Updates are idempotent,
// bookkeeping is trusted only after the kernel accepted a batch, and after
// any failure the next sync re-reads the maps and diffs everything.
package reconciler

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"

	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
	"github.com/hivelet/hivelet/daemon/logfields"
	"github.com/hivelet/hivelet/datapath"
)

// Reconciler owns the desired frontend table and the LB maps.
type Reconciler struct {
	lbmap datapath.LBMap
	log   *slog.Logger

	mu sync.Mutex
	// byService lists the frontends each Service claims. Guarded by mu.
	byService map[lb.ServiceName][]datapath.Frontend
	// desired holds every claimed frontend. Guarded by mu.
	desired map[datapath.Frontend]desiredEntry
	// dirty are frontends changed since the last successful sync. Guarded by mu.
	dirty map[datapath.Frontend]struct{}
	// state is nil until the first sync and after any failure. Guarded by mu.
	state *realized
}

type desiredEntry struct {
	owner lb.ServiceName
	entry lb.Entry
}

// Stats describes one sync.
type Stats struct {
	Full      bool
	Frontends int // frontends examined
	Upserts   int // services written
	Deletes   int // services removed
	Backends  int // backends written
}

// New returns a reconciler for lbmap.
func New(lbmap datapath.LBMap, log *slog.Logger) *Reconciler {
	return &Reconciler{
		lbmap:     lbmap,
		log:       log,
		byService: map[lb.ServiceName][]datapath.Frontend{},
		desired:   map[datapath.Frontend]desiredEntry{},
		dirty:     map[datapath.Frontend]struct{}{},
	}
}

// SetService replaces the frontends a Service wants; nil entries remove
// the Service. A frontend already claimed by another Service stays with
// that one (the conflict is logged).
func (r *Reconciler) SetService(name lb.ServiceName, entries []lb.Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.byService[name] {
		if d, ok := r.desired[f]; ok && d.owner == name {
			delete(r.desired, f)
			r.dirty[f] = struct{}{}
		}
	}
	delete(r.byService, name)
	if entries == nil {
		return
	}
	fs := make([]datapath.Frontend, 0, len(entries))
	for _, e := range entries {
		if d, ok := r.desired[e.Frontend]; ok && d.owner != name {
			r.log.Warn("Frontend already used by another Service; ignoring it here",
				logfields.Service, name.String(), logfields.Frontend, e.Frontend.String(), "owner", d.owner.String())
			continue
		}
		r.desired[e.Frontend] = desiredEntry{owner: name, entry: e}
		r.dirty[e.Frontend] = struct{}{}
		fs = append(fs, e.Frontend)
	}
	r.byService[name] = fs
}

// Sync writes the difference between the desired table and the maps. A
// full sync (forced after a failure and on the first call) re-reads the
// maps and also removes what nobody asked for.
func (r *Reconciler) Sync(full bool) (Stats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	full = full || r.state == nil
	if full {
		st, err := r.lbmap.Dump()
		if err != nil {
			return Stats{Full: true}, fmt.Errorf("read LB maps: %w", err)
		}
		r.state = fromDump(st, len(r.desired))
	}

	var todo []datapath.Frontend
	if full {
		todo = make([]datapath.Frontend, 0, len(r.desired)+len(r.state.slots))
		for f := range r.desired {
			todo = append(todo, f)
		}
		for f := range r.state.slots {
			if _, ok := r.desired[f]; !ok {
				todo = append(todo, f)
			}
		}
	} else {
		todo = make([]datapath.Frontend, 0, len(r.dirty))
		for f := range r.dirty {
			todo = append(todo, f)
		}
	}

	ch := &datapath.Changes{
		UpsertBackends: make(map[datapath.BackendID]datapath.Backend, len(todo)),
		UpsertRevNats:  make(map[datapath.RevNatID]netip.AddrPort, len(todo)),
		UpsertServices: make([]datapath.ServiceUpdate, 0, len(todo)),
	}
	stats := Stats{Full: full, Frontends: len(todo)}
	for _, f := range todo {
		r.diff(f, ch)
	}
	r.collectUnused(ch, full)
	stats.Upserts, stats.Deletes, stats.Backends = len(ch.UpsertServices), len(ch.DeleteServices), len(ch.UpsertBackends)
	if ch.Empty() {
		r.dirty = map[datapath.Frontend]struct{}{}
		return stats, nil
	}
	if err := r.lbmap.Apply(ch); err != nil {
		r.state = nil // the maps are in an unknown state: re-read them next time
		return stats, fmt.Errorf("write LB maps: %w", err)
	}
	r.dirty = map[datapath.Frontend]struct{}{}
	return stats, nil
}

// diff adds to ch what frontend f needs and updates the bookkeeping as if
// ch will be applied (on failure the bookkeeping is dropped).
func (r *Reconciler) diff(f datapath.Frontend, ch *datapath.Changes) {
	s := r.state
	have := s.services[f]
	want, ok := r.desired[f]
	if !ok {
		if n, present := s.slots[f]; present {
			ch.DeleteServices = append(ch.DeleteServices, datapath.ServiceDelete{Frontend: f, PrevSlots: n})
			if have != nil {
				s.releaseBackends(have.Backends)
				if have.RevNat != 0 {
					ch.DeleteRevNats = append(ch.DeleteRevNats, have.RevNat)
					delete(s.revnats, have.RevNat)
				}
			}
			delete(s.services, f)
			delete(s.slots, f)
		}
		return
	}
	svc := &datapath.Service{Frontend: f, Flags: want.entry.Flags, Backends: make([]datapath.BackendID, 0, len(want.entry.Backends))}
	for _, b := range want.entry.Backends {
		svc.Backends = append(svc.Backends, s.acquireBackend(b, ch))
	}
	svc.RevNat = s.revNatFor(f, have, ch)
	if have != nil {
		s.releaseBackends(have.Backends)
		if have.Equal(svc) && s.slots[f] == len(svc.Backends) {
			return // already right
		}
	}
	ch.UpsertServices = append(ch.UpsertServices, datapath.ServiceUpdate{Service: *svc, PrevSlots: s.slots[f]})
	s.services[f] = svc
	s.slots[f] = len(svc.Backends)
}

// collectUnused deletes backends no frontend references any more and, on
// a full sync, reverse-NAT entries no frontend uses.
func (r *Reconciler) collectUnused(ch *datapath.Changes, full bool) {
	s := r.state
	for id := range s.unused {
		ref, ok := s.backends[id]
		if !ok || ref.refs > 0 {
			continue
		}
		ch.DeleteBackends = append(ch.DeleteBackends, id)
		delete(s.backends, id)
		if s.backendByAddr[ref.b] == id {
			delete(s.backendByAddr, ref.b)
		}
	}
	s.unused = map[datapath.BackendID]struct{}{}
	slices.Sort(ch.DeleteBackends) // for stable logs and tests
	if !full {
		return
	}
	used := map[datapath.RevNatID]bool{}
	for _, svc := range s.services {
		used[svc.RevNat] = true
	}
	for id := range s.revnats {
		if !used[id] {
			ch.DeleteRevNats = append(ch.DeleteRevNats, id)
			delete(s.revnats, id)
		}
	}
	slices.Sort(ch.DeleteRevNats)
}

// Counts returns the number of programmed frontends and backends.
func (r *Reconciler) Counts() (frontends, backends int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == nil {
		return 0, 0
	}
	return len(r.state.services), len(r.state.backends)
}
