// Package tracker records Service and EndpointSlice changes from any
// source and hands the sync loop the Services that changed since it last
// asked. Source callbacks only record and poke; all work happens in Take.
package tracker

import (
	"iter"
	"slices"
	"sync"
	"time"

	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
)

// Tracker holds the current Services and EndpointSlices.
type Tracker struct {
	poke func()

	mu       sync.Mutex
	services map[lb.ServiceName]*lb.Service // guarded by mu
	// slices are replaced, never modified in place, so Take can hand
	// them out without copying. Guarded by mu.
	slices map[lb.ServiceName][]*lb.EndpointSlice
	dirty  map[lb.ServiceName]struct{} // guarded by mu
	// triggers holds, per changed Service, the earliest trigger time of
	// the slice changes not synced yet. Guarded by mu.
	triggers map[lb.ServiceName]time.Time
	// node is this node (addresses, zone); nil until known. Guarded by mu.
	node *lb.Node
	// defaultMaglev applies Maglev to Services that do not choose.
	defaultMaglev bool
}

// New returns a tracker that calls poke after recording each change.
func New(poke func()) *Tracker {
	return &Tracker{
		poke:     poke,
		services: map[lb.ServiceName]*lb.Service{},
		slices:   map[lb.ServiceName][]*lb.EndpointSlice{},
		dirty:    map[lb.ServiceName]struct{}{},
		triggers: map[lb.ServiceName]time.Time{},
	}
}

// OnServiceUpdate records a Service change.
func (t *Tracker) OnServiceUpdate(prev, cur *lb.Service) {
	t.mu.Lock()
	if prev != nil {
		delete(t.services, prev.Name)
		t.dirty[prev.Name] = struct{}{}
	}
	if cur != nil {
		t.services[cur.Name] = cur
		t.dirty[cur.Name] = struct{}{}
	}
	t.mu.Unlock()
	t.poke()
}

// OnEndpointSliceUpdate records an EndpointSlice change.
func (t *Tracker) OnEndpointSliceUpdate(prev, cur *lb.EndpointSlice) {
	t.mu.Lock()
	if prev != nil {
		eps := slices.DeleteFunc(slices.Clone(t.slices[prev.Service]), func(s *lb.EndpointSlice) bool { return s.Key() == prev.Key() })
		if len(eps) == 0 {
			delete(t.slices, prev.Service)
		} else {
			t.slices[prev.Service] = eps
		}
		t.dirty[prev.Service] = struct{}{}
	}
	if cur != nil {
		t.slices[cur.Service] = append(slices.Clip(t.slices[cur.Service]), cur)
		t.dirty[cur.Service] = struct{}{}
		if tt := cur.TriggerTime; !tt.IsZero() {
			if old, ok := t.triggers[cur.Service]; !ok || tt.Before(old) {
				t.triggers[cur.Service] = tt
			}
		}
	}
	t.mu.Unlock()
	t.poke()
}

// pending is a Service whose frontends still have to be computed. The
// objects are immutable once recorded, so they can be used unlocked.
type pending struct {
	name   lb.ServiceName
	svc    *lb.Service
	slices []*lb.EndpointSlice
}

// SetDefaultMaglev makes Maglev the algorithm of Services without the
// lb-algorithm annotation (the agent's --bpf-lb-algorithm).
func (t *Tracker) SetDefaultMaglev(on bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.defaultMaglev = on
}

// Touch marks Services changed without a change of their own: the
// reconciler asks for it when a frontend they lost to another Service
// came free.
func (t *Tracker) Touch(names ...lb.ServiceName) {
	if len(names) == 0 {
		return
	}
	t.mu.Lock()
	for _, n := range names {
		t.dirty[n] = struct{}{}
	}
	t.mu.Unlock()
	t.poke()
}

// OnNodeUpdate records this node's addresses and zone. Every Service may
// change with them (NodePorts, topology), so all are marked changed.
func (t *Tracker) OnNodeUpdate(node *lb.Node) {
	t.mu.Lock()
	t.node = node
	for n := range t.services {
		t.dirty[n] = struct{}{}
	}
	t.mu.Unlock()
	t.poke()
}

// Take returns the Services changed since the last call (every Service
// when all is set) and clears the record. The sequence computes each
// Service's frontends as it is consumed, outside the tracker's lock, so
// the consumer can overlap that work with writing the previous ones.
// triggers are the change times the sync will have served once it
// succeeds (for the network-programming latency).
func (t *Tracker) Take(all bool) (changes iter.Seq[lb.Change], triggers []time.Time) {
	t.mu.Lock()
	for _, tt := range t.triggers {
		triggers = append(triggers, tt)
	}
	t.triggers = map[lb.ServiceName]time.Time{}
	var work []pending
	if all {
		// Every Service, plus the deleted ones still waiting to be told.
		work = make([]pending, 0, len(t.services)+len(t.dirty))
		for n, svc := range t.services {
			work = append(work, pending{n, svc, t.slices[n]})
		}
		for n := range t.dirty {
			if t.services[n] == nil {
				work = append(work, pending{name: n})
			}
		}
	} else {
		work = make([]pending, 0, len(t.dirty))
		for n := range t.dirty {
			work = append(work, pending{n, t.services[n], t.slices[n]})
		}
	}
	t.dirty = map[lb.ServiceName]struct{}{}
	node := t.node
	defMaglev := t.defaultMaglev
	t.mu.Unlock()

	return func(yield func(lb.Change) bool) {
		for _, p := range work {
			c := lb.Change{Name: p.name}
			if p.svc != nil {
				svc := p.svc
				if defMaglev && !svc.AlgorithmSet && !svc.Maglev {
					cp := *svc
					cp.Maglev = true
					svc = &cp
				}
				c.Entries = lb.Frontends(svc, p.slices, node)
				c.Health = lb.HealthOf(svc, p.slices, node)
				if c.Entries == nil {
					c.Entries = []lb.Entry{}
				}
			}
			if !yield(c) {
				return
			}
		}
	}, triggers
}

// Counts returns how many Services and EndpointSlices are tracked.
func (t *Tracker) Counts() (services, nslices int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, eps := range t.slices {
		nslices += len(eps)
	}
	return len(t.services), nslices
}
