package k8s

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
)

// Services and EndpointSlices are followed by a client-go reflector (list,
// watch, relist, back-off) writing into handlerStore, which hands every
// change to the handler from the reflector's own goroutine. A shared
// informer would put each object through a delta queue, its indexer and
// a listener goroutine before the handler sees it: at 10k Services that
// handoff is ~70 ms of CPU, and the first sync waited for all of it after
// the lists had arrived.

// handlerStore keeps the last cached object of every key and calls on
// with {previous, current} (nil previous: an add, nil current: a delete).
// Objects arrive raw from watches and already converted from lists; both
// go through toCached.
type handlerStore struct {
	on func(prev, cur any)
	// objs is written only by the reflector's goroutine, one call at a
	// time; mu makes it safe to read from anywhere else.
	mu     sync.Mutex
	objs   map[string]any
	synced chan struct{} // closed after the first Replace: the initial list
	once   sync.Once
}

func newHandlerStore(on func(prev, cur any)) *handlerStore {
	return &handlerStore{on: on, objs: map[string]any{}, synced: make(chan struct{})}
}

// identOfCached is a converted object's identity; nil for anything else.
func identOfCached(obj any) *ident {
	switch o := obj.(type) {
	case *cachedService:
		return &o.ident
	case *cachedSlice:
		return &o.ident
	}
	return nil
}

// cachedKey is namespace/name of a converted object, read without the
// metadata accessor (which allocates).
func cachedKey(obj any) (string, bool) {
	id := identOfCached(obj)
	if id == nil {
		return "", false
	}
	if id.Namespace == "" {
		return id.Name, true
	}
	return id.Namespace + "/" + id.Name, true
}

func (s *handlerStore) Add(obj any) error    { return s.put(obj) }
func (s *handlerStore) Update(obj any) error { return s.put(obj) }

func (s *handlerStore) put(obj any) error {
	cur, _ := toCached(obj)
	key, ok := cachedKey(cur)
	if !ok {
		return nil // not a Service or EndpointSlice: nothing to hand on
	}
	s.mu.Lock()
	prev := s.objs[key]
	s.objs[key] = cur
	s.mu.Unlock()
	s.on(prev, cur)
	return nil
}

func (s *handlerStore) Delete(obj any) error {
	cur, _ := toCached(unwrap(obj))
	key, ok := cachedKey(cur)
	if !ok {
		return nil
	}
	s.mu.Lock()
	prev, had := s.objs[key]
	delete(s.objs, key)
	s.mu.Unlock()
	if had {
		s.on(prev, nil)
	}
	return nil
}

// Replace takes a full list: new and changed objects are handed on,
// those the list no longer has are deleted. An object whose resource
// version did not change (a relist after a broken watch) is not handed on
// again.
func (s *handlerStore) Replace(list []any, _ string) error {
	s.mu.Lock()
	old := s.objs
	s.mu.Unlock()
	next := make(map[string]any, len(list))
	for _, obj := range list {
		cur, _ := toCached(obj)
		key, ok := cachedKey(cur)
		if !ok {
			continue
		}
		prev, had := old[key]
		if rv := identOfCached(cur).ResourceVersion; had && rv != "" && identOfCached(prev).ResourceVersion == rv {
			next[key] = prev
			continue
		}
		next[key] = cur
		s.on(prev, cur)
	}
	for key, prev := range old {
		if _, ok := next[key]; !ok {
			s.on(prev, nil)
		}
	}
	s.mu.Lock()
	s.objs = next
	s.mu.Unlock()
	s.once.Do(func() { close(s.synced) })
	return nil
}

func (s *handlerStore) Resync() error { return nil }

// len is the number of objects held.
func (s *handlerStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.objs)
}

// follow runs a reflector of lw's objects (of type expected) into a
// handlerStore calling on, until ctx ends. The returned channel closes
// once the initial list has been handed on.
func follow(ctx context.Context, name string, lw cache.ListerWatcher, expected runtime.Object, on func(prev, cur any)) <-chan struct{} {
	st := newHandlerStore(on)
	r := cache.NewReflectorWithOptions(lw, expected, st, cache.ReflectorOptions{Name: name})
	go r.RunWithContext(ctx)
	return st.synced
}
