package k8s

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"

	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
)

// The informer caches keep these instead of the API objects: the
// metadata the cache needs for its keys, and the model the agent already
// made from the object (or the reason it was rejected). At 100k Services
// the API objects would be most of the agent's memory.

type cachedService struct {
	metav1.ObjectMeta
	model *lb.Service // nil when there is nothing to serve
	err   error       // why the object was rejected
}

type cachedSlice struct {
	metav1.ObjectMeta
	model *lb.EndpointSlice
	err   error
}

func (*cachedService) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }
func (*cachedSlice) GetObjectKind() schema.ObjectKind   { return schema.EmptyObjectKind }

// The models are immutable once made, so a shallow copy is a deep one.
func (c *cachedService) DeepCopyObject() runtime.Object { cp := *c; return &cp }
func (c *cachedSlice) DeepCopyObject() runtime.Object   { cp := *c; return &cp }

// keyMeta keeps only what cache keys and resyncs use.
func keyMeta(m *metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, ResourceVersion: m.ResourceVersion, UID: m.UID}
}

// toCached is the informers' transform: it converts once, on arrival.
// Tombstones and already converted objects pass through.
func toCached(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Service:
		m, err := convertService(o)
		return &cachedService{ObjectMeta: keyMeta(&o.ObjectMeta), model: m, err: err}, nil
	case *discoveryv1.EndpointSlice:
		m, err := convertSlice(o)
		return &cachedSlice{ObjectMeta: keyMeta(&o.ObjectMeta), model: m, err: err}, nil
	}
	return obj, nil
}

var (
	_ runtime.Object      = (*cachedService)(nil)
	_ runtime.Object      = (*cachedSlice)(nil)
	_ cache.TransformFunc = toCached
)
