package k8s

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// The initial lists are most of an agent's start: at 10k Services the two
// lists decode 9 MB of protobuf into 20k objects, of which the agent keeps
// a small model. The client's own decoding grows each list's item slice
// by doubling (40 MB for 10k Services) and decodes every object's
// managedFields, half of its bytes, only for the transform to drop them.
// decodeList sizes the slice once and skips managedFields: half the time
// and under 40% of the memory (BenchmarkDecodeList), and on a fresh heap
// every page not allocated is a page fault not taken.

// protobufMagic opens every Kubernetes protobuf body: then a
// runtime.Unknown whose field 2 is the object.
var protobufMagic = []byte("k8s\x00")

const (
	unknownRaw             = 2 // runtime.Unknown.raw
	unknownContentEncoding = 3 // runtime.Unknown.contentEncoding
	listMetadata           = 1 // every List's metadata (ListMeta)
	listItems              = 2 // every List's items
	objectMetadata         = 1 // every object's metadata (ObjectMeta)
	metaManagedFields      = 17
)

// listItem is what decodeList needs of an item type.
type listItem[T any] interface {
	*T
	runtime.Object
	Unmarshal([]byte) error
	GetObjectMeta() metav1.Object
}

// decodeList decodes a protobuf list body into its ListMeta and items,
// without the items' managedFields.
func decodeList[T any, PT listItem[T]](body []byte, lm *metav1.ListMeta) ([]T, error) {
	list, err := unwrapUnknown(body)
	if err != nil {
		return nil, err
	}
	n := 0
	if err := eachField(list, func(num protowire.Number, v []byte) error {
		switch num {
		case listMetadata:
			return lm.Unmarshal(v)
		case listItems:
			n++
		}
		return nil
	}); err != nil {
		return nil, err
	}
	items := make([]T, 0, n)
	err = eachField(list, func(num protowire.Number, v []byte) error {
		if num != listItems {
			return nil
		}
		items = append(items, *new(T))
		return decodeItem(PT(&items[len(items)-1]), v)
	})
	return items, err
}

// decodeItem decodes an item's metadata apart, without managedFields, and
// the rest as is: the generated decoder leaves fields absent from its
// input untouched. Encoders write the metadata (field 1) first; an item
// where it is not first decodes whole, managedFields included (the
// transform drops them anyway).
func decodeItem[T any, PT listItem[T]](item PT, b []byte) error {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || num != objectMetadata || typ != protowire.BytesType {
		return item.Unmarshal(b)
	}
	meta, m := protowire.ConsumeBytes(b[n:])
	if m < 0 {
		return fmt.Errorf("decode protobuf field %d: %w", num, protowire.ParseError(m))
	}
	if err := item.Unmarshal(b[n+m:]); err != nil {
		return err
	}
	trimmed, err := withoutManagedFields(meta)
	if err != nil {
		return err
	}
	om, ok := item.GetObjectMeta().(*metav1.ObjectMeta)
	if !ok {
		return errors.New("item metadata is not an ObjectMeta")
	}
	return om.Unmarshal(trimmed)
}

// withoutManagedFields returns meta without its managedFields entries. The
// encoder writes fields in number order, so they are its tail and a
// reslice drops them; otherwise the other fields are copied.
func withoutManagedFields(meta []byte) ([]byte, error) {
	cut, tail, pos := -1, true, 0
	if err := eachRaw(meta, func(num protowire.Number, _, raw []byte) error {
		switch {
		case num == metaManagedFields && cut < 0:
			cut = pos
		case num != metaManagedFields && cut >= 0:
			tail = false
		}
		pos += len(raw)
		return nil
	}); err != nil {
		return nil, err
	}
	switch {
	case cut < 0:
		return meta, nil
	case tail:
		return meta[:cut], nil
	}
	out := make([]byte, 0, len(meta))
	err := eachRaw(meta, func(num protowire.Number, _, raw []byte) error {
		if num != metaManagedFields {
			out = append(out, raw...)
		}
		return nil
	})
	return out, err
}

// unwrapUnknown returns the object bytes of a protobuf body.
func unwrapUnknown(body []byte) ([]byte, error) {
	if !bytes.HasPrefix(body, protobufMagic) {
		return nil, errors.New("not a Kubernetes protobuf body")
	}
	var obj []byte
	err := eachField(body[len(protobufMagic):], func(num protowire.Number, v []byte) error {
		switch num {
		case unknownRaw:
			obj = v
		case unknownContentEncoding:
			if len(v) > 0 {
				return fmt.Errorf("unsupported content encoding %q", v)
			}
		}
		return nil
	})
	return obj, err
}

// eachField calls f with every length-delimited field of a message.
func eachField(b []byte, f func(num protowire.Number, v []byte) error) error {
	return eachRaw(b, func(num protowire.Number, v, _ []byte) error {
		if v == nil {
			return nil
		}
		return f(num, v)
	})
}

// eachRaw calls f with every field of a message: its value when it is
// length-delimited (nil otherwise) and its whole encoding, tag included.
func eachRaw(b []byte, f func(num protowire.Number, v, raw []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("decode protobuf: %w", protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return fmt.Errorf("decode protobuf field %d: %w", num, protowire.ParseError(m))
		}
		var v []byte
		if typ == protowire.BytesType {
			v, _ = protowire.ConsumeBytes(b[n:])
			if v == nil {
				v = []byte{}
			}
		}
		if err := f(num, v, b[:n+m]); err != nil {
			return err
		}
		b = b[n+m:]
	}
	return nil
}

// listsOnly makes the reflector list (through decodeList) instead of
// streaming the initial objects as watch events, which are decoded one by
// one with their managedFields; where the API server's storage cannot
// stream them (etcd before 3.5) the attempt is also a wasted round trip.
type listsOnly struct{ *cache.ListWatch }

func (listsOnly) IsWatchListSemanticsUnSupported() bool { return true }

// fastInformers returns the Service and EndpointSlice informers of f,
// listing through decodeList when client is a real clientset (a fake one
// has no REST client: its own list and watch then).
func fastInformers(client kubernetes.Interface, f informers.SharedInformerFactory) (svc, eps cache.SharedIndexInformer) {
	core, ok1 := client.CoreV1().RESTClient().(*rest.RESTClient)
	disc, ok2 := client.DiscoveryV1().RESTClient().(*rest.RESTClient)
	if !ok1 || !ok2 || core == nil || disc == nil {
		return f.Core().V1().Services().Informer(), f.Discovery().V1().EndpointSlices().Informer()
	}
	svc = fastInformer(f, core, "services", func() (runtime.Object, *metav1.ListMeta, *[]corev1.Service) {
		l := &corev1.ServiceList{}
		return l, &l.ListMeta, &l.Items
	}, client.CoreV1().Services("").Watch)
	eps = fastInformer(f, disc, "endpointslices", func() (runtime.Object, *metav1.ListMeta, *[]discoveryv1.EndpointSlice) {
		l := &discoveryv1.EndpointSliceList{}
		return l, &l.ListMeta, &l.Items
	}, client.DiscoveryV1().EndpointSlices("").Watch)
	return svc, eps
}

// fastInformer is f's informer on objects of type T: it lists resource
// through rc into a list newList makes, decoding with decodeList, and
// watches with watch.
func fastInformer[T any, PT listItem[T]](f informers.SharedInformerFactory, rc rest.Interface, resource string,
	newList func() (runtime.Object, *metav1.ListMeta, *[]T), watch cache.WatchFuncWithContext) cache.SharedIndexInformer {
	return f.InformerFor(PT(new(T)), func(_ kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
		return cache.NewSharedIndexInformer(listsOnly{&cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
				obj, lm, items := newList()
				return obj, list(ctx, rc, resource, opts, obj, func(body []byte) (err error) {
					*items, err = decodeList[T, PT](body, lm)
					return err
				})
			},
			WatchFuncWithContext: watch,
		}}, PT(new(T)), resync, cache.Indexers{})
	})
}

// list GETs every object of resource: a protobuf body goes to fast, any
// other into obj by the client's own decoding.
func list(ctx context.Context, rc rest.Interface, resource string, opts metav1.ListOptions, obj runtime.Object, fast func([]byte) error) error {
	res := rc.Get().Resource(resource).VersionedParams(&opts, scheme.ParameterCodec).Do(ctx)
	var ct string
	body, err := res.ContentType(&ct).Raw()
	if err != nil {
		return err
	}
	if strings.HasPrefix(ct, runtime.ContentTypeProtobuf) {
		if err := fast(body); err != nil {
			return fmt.Errorf("decode %s list: %w", resource, err)
		}
		return nil
	}
	return res.Into(obj)
}
