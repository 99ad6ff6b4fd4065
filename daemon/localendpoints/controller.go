package localendpoints

import (
	"context"
	"log/slog"
	"reflect"
	"sync"
	"time"

	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
	"github.com/hivelet/hivelet/daemon/manifests"
)

// Resync is how often the slices are rebuilt without a change signal, in
// case one was missed.
const Resync = 5 * time.Second

// Controller sits between the manifests source and the tracker: it passes
// every change through and adds, for each Service with a selector, the
// EndpointSlices of the node's matching pods.
type Controller struct {
	next manifests.Handler
	pods *Pods
	node string
	log  *slog.Logger

	mu        sync.Mutex
	services  map[lb.ServiceName]*lb.Service         // with a selector; guarded by mu
	published map[lb.ServiceName][]*lb.EndpointSlice // told to next; guarded by mu
	kick      chan struct{}
}

// New returns a controller that tells next; node names the endpoints.
func New(next manifests.Handler, pods *Pods, node string, log *slog.Logger) *Controller {
	return &Controller{next: next, pods: pods, node: node, log: log, kick: make(chan struct{}, 1),
		services: map[lb.ServiceName]*lb.Service{}, published: map[lb.ServiceName][]*lb.EndpointSlice{}}
}

// OnServiceUpdate passes the change on and follows the Service's selector.
func (c *Controller) OnServiceUpdate(prev, cur *lb.Service) {
	c.next.OnServiceUpdate(prev, cur)
	c.mu.Lock()
	if prev != nil {
		delete(c.services, prev.Name)
	}
	if cur != nil && cur.Selector != nil {
		c.services[cur.Name] = cur
	}
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// OnEndpointSliceUpdate passes a manifests EndpointSlice on unchanged.
func (c *Controller) OnEndpointSliceUpdate(prev, cur *lb.EndpointSlice) {
	c.next.OnEndpointSliceUpdate(prev, cur)
}

// Start waits until the kubelet has a status for every pod it knew at
// start (at most wait), so that a restart keeps serving the pods that
// never stopped, publishes the slices once, and then follows changes until
// ctx ends.
func (c *Controller) Start(ctx context.Context, wait time.Duration) {
	deadline := time.Now().Add(wait)
	for !c.pods.isSynced() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	if !c.pods.isSynced() {
		c.log.Warn("The kubelet has not reported every pod yet; publishing the endpoints it has", "waited", wait)
	}
	c.Reconcile()
	go c.run(ctx)
}

func (c *Controller) run(ctx context.Context) {
	t := time.NewTicker(Resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.pods.changed:
		case <-c.kick:
		case <-t.C:
		}
		c.Reconcile()
	}
}

// Reconcile rebuilds every selector Service's slices from the pods and
// tells next what differs from what it was told.
func (c *Controller) Reconcile() {
	idx := indexPods(c.pods.snapshot())
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, svc := range c.services {
		c.publish(name, desired(svc, idx, c.node))
	}
	for name := range c.published {
		if _, ok := c.services[name]; !ok {
			c.publish(name, nil)
		}
	}
}

// publish makes next hold exactly want for the Service; c.mu is held.
func (c *Controller) publish(name lb.ServiceName, want []*lb.EndpointSlice) {
	have := map[string]*lb.EndpointSlice{}
	for _, s := range c.published[name] {
		have[s.Name] = s
	}
	now := time.Now()
	for i, s := range want {
		old := have[s.Name]
		delete(have, s.Name)
		if old != nil && reflect.DeepEqual(old.Ports, s.Ports) && reflect.DeepEqual(old.Endpoints, s.Endpoints) {
			want[i] = old // the version next holds, with its trigger time
			continue
		}
		s.TriggerTime = now
		c.next.OnEndpointSliceUpdate(old, s)
	}
	for _, old := range have {
		c.next.OnEndpointSliceUpdate(old, nil)
	}
	if len(want) == 0 {
		delete(c.published, name)
		return
	}
	c.published[name] = want
}
