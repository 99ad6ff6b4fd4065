// Package tracker records Service and EndpointSlice changes from any
// source and hands the sync loop the Services that changed since it last
// asked. Source callbacks only record and poke; all work happens in Take.
package tracker

import (
	"slices"
	"sync"

	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
)

// Tracker holds the current Services and EndpointSlices.
type Tracker struct {
	poke func()

	mu       sync.Mutex
	services map[lb.ServiceName]*lb.Service         // guarded by mu
	slices   map[lb.ServiceName][]*lb.EndpointSlice // guarded by mu; few per Service
	dirty    map[lb.ServiceName]struct{}            // guarded by mu
}

// New returns a tracker that calls poke after recording each change.
func New(poke func()) *Tracker {
	return &Tracker{
		poke:     poke,
		services: map[lb.ServiceName]*lb.Service{},
		slices:   map[lb.ServiceName][]*lb.EndpointSlice{},
		dirty:    map[lb.ServiceName]struct{}{},
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
		eps := slices.DeleteFunc(t.slices[prev.Service], func(s *lb.EndpointSlice) bool { return s.Key() == prev.Key() })
		if len(eps) == 0 {
			delete(t.slices, prev.Service)
		} else {
			t.slices[prev.Service] = eps
		}
		t.dirty[prev.Service] = struct{}{}
	}
	if cur != nil {
		t.slices[cur.Service] = append(t.slices[cur.Service], cur)
		t.dirty[cur.Service] = struct{}{}
	}
	t.mu.Unlock()
	t.poke()
}

// Take returns the frontends of every Service changed since the last call
// (of every Service when all is set) and clears the record.
func (t *Tracker) Take(all bool) []lb.Change {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []lb.Change
	if all {
		// Every Service, plus the deleted ones still waiting to be told.
		out = make([]lb.Change, 0, len(t.services)+len(t.dirty))
		for n, svc := range t.services {
			out = append(out, t.change(n, svc))
		}
		for n := range t.dirty {
			if t.services[n] == nil {
				out = append(out, lb.Change{Name: n})
			}
		}
	} else {
		out = make([]lb.Change, 0, len(t.dirty))
		for n := range t.dirty {
			out = append(out, t.change(n, t.services[n]))
		}
	}
	t.dirty = map[lb.ServiceName]struct{}{}
	return out
}

func (t *Tracker) change(n lb.ServiceName, svc *lb.Service) lb.Change {
	c := lb.Change{Name: n}
	if svc != nil {
		c.Entries = lb.Frontends(svc, t.slices[n])
		if c.Entries == nil {
			c.Entries = []lb.Entry{}
		}
	}
	return c
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
