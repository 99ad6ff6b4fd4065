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

// The stores keep these instead of the API objects: the identity the
// store needs for its keys, and the model the agent already
// made from the object (or the reason it was rejected). At 100k Services
// the API objects would be most of the agent's memory, and even a bare
// metav1.ObjectMeta is ~250 bytes: 50 MB for 200k objects.

// ident is what the stores read of a cached object: its key
// (namespace/name) and resource version.
type ident struct {
	Name, Namespace, ResourceVersion string
}

// GetObjectMeta makes the metadata view client-go's key functions read
// (meta.Accessor), for anything that keys a cached object through them.
func (i *ident) GetObjectMeta() metav1.Object {
	return &metav1.ObjectMeta{Name: i.Name, Namespace: i.Namespace, ResourceVersion: i.ResourceVersion}
}

type cachedService struct {
	ident
	model *lb.Service // nil when there is nothing to serve
	err   error       // why the object was rejected
}

type cachedSlice struct {
	ident
	model *lb.EndpointSlice
	err   error
}

func (*cachedService) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }
func (*cachedSlice) GetObjectKind() schema.ObjectKind   { return schema.EmptyObjectKind }

// The models are immutable once made, so a shallow copy is a deep one.
func (c *cachedService) DeepCopyObject() runtime.Object { cp := *c; return &cp }
func (c *cachedSlice) DeepCopyObject() runtime.Object   { cp := *c; return &cp }

func identOf(m *metav1.ObjectMeta) ident {
	return ident{Name: m.Name, Namespace: m.Namespace, ResourceVersion: m.ResourceVersion}
}

// toCached converts an object once, on arrival (handlerStore calls it).
// Tombstones and already converted objects pass through.
func toCached(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Service:
		m, err := convertService(o)
		return &cachedService{ident: identOf(&o.ObjectMeta), model: m, err: err}, nil
	case *discoveryv1.EndpointSlice:
		m, err := convertSlice(o)
		return &cachedSlice{ident: identOf(&o.ObjectMeta), model: m, err: err}, nil
	}
	return obj, nil
}

var (
	_ metav1.ObjectMetaAccessor = (*cachedService)(nil)
	_ metav1.ObjectMetaAccessor = (*cachedSlice)(nil)
	_ runtime.Object            = (*cachedService)(nil)
	_ runtime.Object            = (*cachedSlice)(nil)
	_ cache.TransformFunc       = toCached
)
