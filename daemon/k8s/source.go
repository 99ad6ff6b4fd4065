// Package k8s is the agent's Kubernetes source: client-go reflectors on
// Services and EndpointSlices (and an informer on this node's Node),
// reduced to the load-balancer model and handed to the change tracker as
// {previous, current}.
//
// Callbacks only convert and record. An object the model rejects is logged
// and its last valid version stays in service, as with the manifests
// source; Services another proxy owns, headless and ExternalName Services
// are reported as absent.
package k8s

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
	"github.com/hivelet/hivelet/daemon/logfields"
)

// Handler receives every change as {previous, current}; nil previous is
// an add, nil current a delete.
type Handler interface {
	OnServiceUpdate(prev, cur *lb.Service)
	OnEndpointSliceUpdate(prev, cur *lb.EndpointSlice)
	// OnNodeUpdate reports this node; nil when it has no Node object.
	OnNodeUpdate(*lb.Node)
}

// Source watches the API server.
type Source struct {
	client   kubernetes.Interface
	handler  Handler
	log      *slog.Logger
	nodeName string
	// hostPorts: this node's pods are followed for their hostPorts.
	hostPorts bool

	mu sync.Mutex
	// rejected maps slices whose latest version was rejected to the
	// Service of the version still in service. Guarded by mu; usually empty.
	rejected map[string]lb.ServiceName
}

// New returns a source reading through client for the node named
// nodeName (its addresses serve NodePorts, its zone topology hints).
func New(client kubernetes.Interface, nodeName string, h Handler, log *slog.Logger) *Source {
	return &Source{client: client, nodeName: nodeName, handler: h, log: log, rejected: map[string]lb.ServiceName{}}
}

// Start follows the API server until ctx ends and returns once the
// initial lists have been handed on, so the first sync sees the whole cluster: a restarted agent
// never deletes a Service only because it was not listed yet.
func (s *Source) Start(ctx context.Context) error {
	listStart := time.Now()
	svcLW, epsLW := listWatchers(s.client)
	svcSynced := follow(ctx, "services", svcLW, &corev1.Service{}, s.onService)
	epsSynced := follow(ctx, "endpointslices", epsLW, &discoveryv1.EndpointSlice{}, s.onSlice)
	// Only this node's Node object: a field-selected watch.
	nf := informers.NewSharedInformerFactoryWithOptions(s.client, 0, informers.WithTransform(stripManagedFields),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name=" + s.nodeName }))
	nodeInf := nf.Core().V1().Nodes().Informer()
	nodeReg, err := nodeInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    s.onNode,
		UpdateFunc: func(_, obj any) { s.onNode(obj) },
		DeleteFunc: func(obj any) {
			if n := convertNode(obj); n != nil && n.Name == s.nodeName {
				s.handler.OnNodeUpdate(nil)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watch Node %s: %w", s.nodeName, err)
	}
	nf.Start(ctx.Done())
	checkers := []cache.DoneChecker{nodeReg.HasSyncedChecker()}
	if s.hostPorts && s.mayListPods(ctx) {
		podReg, err := s.watchHostPorts(ctx.Done())
		if err != nil {
			return fmt.Errorf("watch the pods of %s for hostPorts: %w", s.nodeName, err)
		}
		checkers = append(checkers, podReg.HasSyncedChecker())
	}
	synced := make(chan struct{})
	go func() {
		defer close(synced)
		// The node handler's checker, not the informer's: an informer is
		// synced once its store holds the list, its handlers only once
		// they have been handed every listed object, which is what the
		// first sync needs. Channels, not the 100 ms polling of
		// WaitForCacheSync: this wait is on the path from start to
		// programmed.
		for _, ch := range []<-chan struct{}{svcSynced, epsSynced} {
			select {
			case <-ch:
			case <-ctx.Done():
				return
			}
		}
		cache.WaitFor(ctx, "", checkers...)
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-synced:
			s.log.Info("Listed Services and EndpointSlices", logfields.Duration, time.Since(listStart))
			return nil
		case <-time.After(30 * time.Second):
			s.log.Warn("Still waiting for the API server's initial lists; nothing is synced before them (the agent lists Services, EndpointSlices, its Node and, for hostPorts, its pods: check its RBAC)")
		}
	}
}

// stripManagedFields drops what the agent never reads before the object
// reaches the informer cache: at 100k objects it is most of the memory.
func stripManagedFields(obj any) (any, error) {
	if m, ok := obj.(metav1.ObjectMetaAccessor); ok {
		meta := m.GetObjectMeta()
		meta.SetManagedFields(nil)
		if a := meta.GetAnnotations(); a != nil {
			delete(a, corev1.LastAppliedConfigAnnotation)
		}
	}
	return obj, nil
}

// unwrap turns a DeletedFinalStateUnknown tombstone into its object.
func unwrap(obj any) any {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return t.Obj
	}
	return obj
}

func (s *Source) onService(oldObj, newObj any) {
	old, _ := unwrap(oldObj).(*cachedService)
	cur, _ := unwrap(newObj).(*cachedService)
	if cur != nil && cur.err != nil {
		s.log.Error("Rejected Service; its last valid version stays in service", logfields.Error, cur.err)
		return
	}
	var prevM, curM *lb.Service
	if old != nil {
		prevM = old.model
		if old.err != nil {
			// The old version was rejected, so the last one handed on is
			// older still; the tracker needs only its name to replace it.
			prevM = &lb.Service{Name: lb.ServiceName{Namespace: old.Namespace, Name: old.Name}}
		}
	}
	if cur != nil {
		curM = cur.model
	}
	s.handOnService(prevM, curM)
}

func (s *Source) handOnService(prev, cur *lb.Service) {
	if prev != nil || cur != nil {
		s.handler.OnServiceUpdate(prev, cur)
	}
}

func (s *Source) onSlice(oldObj, newObj any) {
	old, _ := unwrap(oldObj).(*cachedSlice)
	curC, _ := unwrap(newObj).(*cachedSlice)
	var prev, cur *lb.EndpointSlice
	if old != nil {
		prev = old.model
	}
	if curC != nil && curC.err != nil {
		s.log.Error("Rejected EndpointSlice; its last valid version stays in service", logfields.Error, curC.err)
		if prev != nil {
			s.rejectedOwner(prev.Key(), &prev.Service)
		}
		return
	}
	if curC != nil {
		cur = curC.model
	}
	if old != nil && old.err != nil {
		// The last version handed on is older than the rejected one: the
		// tracker finds it by key and by the Service it belonged to.
		key := old.Namespace + "/" + old.Name
		prev = &lb.EndpointSlice{Namespace: old.Namespace, Name: old.Name, Service: s.rejectedOwner(key, nil)}
	}
	if prev == nil && cur == nil {
		return
	}
	// Accepted or deleted: nothing rejected is pending for this slice.
	s.mu.Lock()
	if cur != nil {
		delete(s.rejected, cur.Key())
	} else {
		delete(s.rejected, prev.Key())
	}
	s.mu.Unlock()
	s.handler.OnEndpointSliceUpdate(prev, cur)
}

// rejectedOwner remembers, for a slice whose update was rejected, which
// Service its last accepted version belongs to (set when owner is given)
// and returns it.
func (s *Source) rejectedOwner(key string, owner *lb.ServiceName) lb.ServiceName {
	s.mu.Lock()
	defer s.mu.Unlock()
	if owner != nil {
		if _, known := s.rejected[key]; !known {
			s.rejected[key] = *owner
		}
	}
	return s.rejected[key]
}

// convertService reduces an API object to the model: nil when there
// is nothing to serve (absent, ignored), an error when it is invalid.
func convertService(obj any) (*lb.Service, error) {
	in, ok := obj.(*corev1.Service)
	if !ok || in == nil || lb.Ignored(in) != "" {
		return nil, nil
	}
	out, errs := lb.ConvertService(in)
	if len(errs) > 0 {
		return nil, fmt.Errorf("Service %s/%s: %w", in.Namespace, in.Name, errs.ToAggregate())
	}
	return out, nil
}

func convertSlice(obj any) (*lb.EndpointSlice, error) {
	in, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok || in == nil {
		return nil, nil
	}
	out, errs := lb.ConvertEndpointSlice(in)
	if len(errs) > 0 {
		return nil, fmt.Errorf("EndpointSlice %s/%s: %w", in.Namespace, in.Name, errs.ToAggregate())
	}
	return out, nil
}

// onNode passes this node on; the name check guards against servers (and
// fakes) that ignore the field selector.
func (s *Source) onNode(obj any) {
	if n := convertNode(obj); n != nil && n.Name == s.nodeName {
		s.handler.OnNodeUpdate(n)
	}
}

// convertNode keeps what load balancing needs of a Node: its InternalIP and
// ExternalIP addresses (NodePorts listen there) and its zone.
func convertNode(obj any) *lb.Node {
	in, ok := unwrap(obj).(*corev1.Node)
	if !ok || in == nil {
		return nil
	}
	n := &lb.Node{Name: in.Name, Zone: in.Labels[corev1.LabelTopologyZone]}
	for _, a := range in.Status.Addresses {
		if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil && !slices.Contains(n.Addrs, ip.Unmap()) {
			n.Addrs = append(n.Addrs, ip.Unmap())
		}
	}
	return n
}
