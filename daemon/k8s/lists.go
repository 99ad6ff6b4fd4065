package k8s

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// The initial lists are most of an agent's start: at 10k Services the two
// lists are 9 MB of protobuf for 20k objects, of which the agent keeps a
// small model. The client's own list reads the whole body, then decodes
// it into a slice of items grown by doubling (40 MB for 10k Services),
// managedFields included (half of each object's bytes), and only then
// are the objects converted. Here the body is decoded as it streams in:
// one item at a time, with only the metadata the agent reads (no
// managedFields, owner references, uid, timestamps), converted at once, so the
// work overlaps the API server's sending and the API objects never all
// exist together (BenchmarkDecodeList: 0.6x the time, a quarter of the
// memory; on a fresh heap every page not allocated is a fault not taken).

// protobufMagic opens every Kubernetes protobuf body: then a
// runtime.Unknown whose field 2 is the object.
var protobufMagic = []byte("k8s\x00")

const (
	unknownRaw             = 2 // runtime.Unknown.raw
	unknownContentEncoding = 3 // runtime.Unknown.contentEncoding
	listMetadata           = 1 // every List's metadata (ListMeta)
	listItems              = 2 // every List's items
	objectMetadata         = 1 // every object's metadata (ObjectMeta)
	// maxItemBytes bounds one item: the API server refuses objects over
	// 1.5 MiB (etcd's request limit), so more means a corrupt length.
	maxItemBytes = 16 << 20
)

// listItem is what decodeList needs of an item type.
type listItem[T any] interface {
	*T
	runtime.Object
	Unmarshal([]byte) error
	GetObjectMeta() metav1.Object
}

// decodeList reads a protobuf list body from r as it arrives: the
// ListMeta into lm, and every item, decoded without managedFields into
// an object each that is handed to item and then reused.
func decodeList[T any, PT listItem[T]](r io.Reader, lm *metav1.ListMeta, item func(PT) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	magic := make([]byte, len(protobufMagic))
	if _, err := io.ReadFull(br, magic); err != nil || !bytes.Equal(magic, protobufMagic) {
		return errors.New("not a Kubernetes protobuf body")
	}
	var buf, metaBuf []byte
	obj := PT(new(T))
	return eachStreamed(br, -1, math.MaxInt, func(num protowire.Number, n int) error {
		switch num {
		case unknownRaw:
			// The list itself.
			return eachStreamed(br, n, maxItemBytes, func(num protowire.Number, n int) (err error) {
				if buf, err = readN(br, buf, n); err != nil {
					return err
				}
				switch num {
				case listMetadata:
					return lm.Unmarshal(buf)
				case listItems:
					*obj = *new(T)
					if metaBuf, err = decodeItem(obj, buf, metaBuf); err != nil {
						return err
					}
					return item(obj)
				}
				return nil
			})
		case unknownContentEncoding:
			var err error
			if buf, err = readN(br, buf, n); err == nil && n > 0 {
				err = fmt.Errorf("unsupported content encoding %q", buf)
			}
			return err
		}
		_, err := br.Discard(n)
		return err
	})
}

// eachStreamed reads the fields of a message of size bytes (-1: to the
// end of the stream) from br, calling f with each length-delimited field's
// number and length (at most limit); f must consume exactly that many
// bytes. Fields of other wire types are skipped.
func eachStreamed(br *bufio.Reader, size, limit int, f func(num protowire.Number, n int) error) error {
	read := 0
	for size < 0 || read < size {
		tag, tn, err := readUvarint(br)
		if errors.Is(err, io.EOF) && size < 0 && tn == 0 {
			return nil
		}
		if err != nil {
			return fmt.Errorf("decode protobuf: %w", err)
		}
		read += tn
		num, typ := protowire.DecodeTag(tag)
		if num <= 0 {
			return errors.New("decode protobuf: invalid field number")
		}
		switch typ {
		case protowire.BytesType:
			n, ln, err := readUvarint(br)
			if err != nil {
				return fmt.Errorf("decode protobuf field %d: %w", num, err)
			}
			if n > uint64(limit) || size >= 0 && read+ln+int(n) > size {
				return fmt.Errorf("decode protobuf field %d: length %d out of bounds", num, n)
			}
			if err := f(num, int(n)); err != nil {
				return err
			}
			read += ln + int(n)
		case protowire.VarintType:
			_, n, err := readUvarint(br)
			if err != nil {
				return fmt.Errorf("decode protobuf field %d: %w", num, err)
			}
			read += n
		case protowire.Fixed32Type, protowire.Fixed64Type:
			n := 4
			if typ == protowire.Fixed64Type {
				n = 8
			}
			if _, err := br.Discard(n); err != nil {
				return fmt.Errorf("decode protobuf field %d: %w", num, err)
			}
			read += n
		default:
			return fmt.Errorf("decode protobuf field %d: unsupported wire type %d", num, typ)
		}
	}
	if read != size {
		return errors.New("decode protobuf: message overruns its length")
	}
	return nil
}

// readUvarint reads a varint and says how many bytes it took.
func readUvarint(br *bufio.Reader) (v uint64, n int, err error) {
	for shift := uint(0); shift < 64; shift += 7 {
		b, err := br.ReadByte()
		if err != nil {
			if n > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, n, err
		}
		n++
		v |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return v, n, nil
		}
	}
	return 0, n, errors.New("varint overflows 64 bits")
}

// readN reads n bytes into buf (grown as needed) and returns them.
func readN(br *bufio.Reader, buf []byte, n int) ([]byte, error) {
	if cap(buf) < n {
		buf = make([]byte, n, max(n, 2*cap(buf)))
	}
	buf = buf[:n]
	if _, err := io.ReadFull(br, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("decode protobuf: %w", err)
	}
	return buf, nil
}

// decodeItem decodes an item's metadata apart, keeping only what the
// agent reads of it (keepMeta), and the rest as is: the generated decoder
// leaves fields absent from its input untouched. Encoders write the
// metadata (field 1) first; an item where it is not first decodes whole.
// scratch is a buffer for the kept metadata, returned for reuse (the
// decoder copies the strings out).
func decodeItem[T any, PT listItem[T]](item PT, b, scratch []byte) ([]byte, error) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || num != objectMetadata || typ != protowire.BytesType {
		return scratch, item.Unmarshal(b)
	}
	meta, m := protowire.ConsumeBytes(b[n:])
	if m < 0 {
		return scratch, fmt.Errorf("decode protobuf field %d: %w", num, protowire.ParseError(m))
	}
	if err := item.Unmarshal(b[n+m:]); err != nil {
		return scratch, err
	}
	kept, scratch, err := keepMeta(meta, scratch)
	if err != nil {
		return scratch, err
	}
	om, ok := item.GetObjectMeta().(*metav1.ObjectMeta)
	if !ok {
		return scratch, errors.New("item metadata is not an ObjectMeta")
	}
	return scratch, om.Unmarshal(kept)
}

// keptMeta are the ObjectMeta fields (by protobuf number) the agent
// reads: name, namespace, resourceVersion, labels and annotations. The
// others (managedFields, half of an object's bytes; owner references,
// uid, timestamps, finalizers) are never decoded.
var keptMeta = [...]bool{1: true, 3: true, 6: true, 11: true, 12: true}

// keepMeta returns meta with only the keptMeta fields, copied into
// scratch (grown as needed; the API server writes every field, empty or
// not, so there is always something to leave out).
func keepMeta(meta, scratch []byte) (kept, buf []byte, err error) {
	buf = scratch[:0]
	err = eachRaw(meta, func(num protowire.Number, raw []byte) error {
		if int(num) < len(keptMeta) && keptMeta[num] {
			buf = append(buf, raw...)
		}
		return nil
	})
	return buf, buf, err
}

// eachRaw calls f with every field of a message: its number and its whole
// encoding, tag included.
func eachRaw(b []byte, f func(num protowire.Number, raw []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("decode protobuf: %w", protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return fmt.Errorf("decode protobuf field %d: %w", num, protowire.ParseError(m))
		}
		if err := f(num, b[:n+m]); err != nil {
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

// listWatchers returns the list-watches of Services and EndpointSlices:
// listing through decodeList when client is a real clientset (a fake one
// has no REST client: its own list then).
func listWatchers(client kubernetes.Interface) (svc, eps cache.ListerWatcher) {
	svcs, epss := client.CoreV1().Services(""), client.DiscoveryV1().EndpointSlices("")
	core, ok1 := client.CoreV1().RESTClient().(*rest.RESTClient)
	disc, ok2 := client.DiscoveryV1().RESTClient().(*rest.RESTClient)
	if !ok1 || !ok2 || core == nil || disc == nil {
		return listWatch(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return svcs.List(ctx, o) }, svcs.Watch),
			listWatch(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return epss.List(ctx, o) }, epss.Watch)
	}
	return listWatch(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return list[corev1.Service](ctx, core, "services", o, &corev1.ServiceList{})
		}, svcs.Watch),
		listWatch(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return list[discoveryv1.EndpointSlice](ctx, disc, "endpointslices", o, &discoveryv1.EndpointSliceList{})
		}, epss.Watch)
}

func listWatch(l cache.ListWithContextFunc, w cache.WatchFuncWithContext) cache.ListerWatcher {
	return listsOnly{&cache.ListWatch{ListWithContextFunc: l, WatchFuncWithContext: w}}
}

// cachedList is a list as the reflector takes it: its metadata and the
// items already converted (toCached passes them through).
type cachedList struct {
	metav1.TypeMeta
	metav1.ListMeta
	Items []runtime.Object
}

func (l *cachedList) DeepCopyObject() runtime.Object {
	cp := *l
	cp.Items = slices.Clone(l.Items)
	return &cp
}

// list GETs every object of resource, streaming a protobuf body through
// decodeList; any other body is decoded whole into fallback, a list.
func list[T any, PT listItem[T]](ctx context.Context, rc rest.Interface, resource string, opts metav1.ListOptions, fallback runtime.Object) (runtime.Object, error) {
	body, err := rc.Get().Resource(resource).VersionedParams(&opts, scheme.ParameterCodec).Stream(ctx)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	br := bufio.NewReaderSize(body, 64<<10)
	out := &cachedList{}
	if head, _ := br.Peek(len(protobufMagic)); !bytes.Equal(head, protobufMagic) {
		raw, err := io.ReadAll(br)
		if err != nil {
			return nil, fmt.Errorf("read %s list: %w", resource, err)
		}
		if err := runtime.DecodeInto(scheme.Codecs.UniversalDeserializer(), raw, fallback); err != nil {
			return nil, fmt.Errorf("decode %s list: %w", resource, err)
		}
		items, err := apimeta.ExtractList(fallback)
		if err != nil {
			return nil, err
		}
		lm, err := apimeta.ListAccessor(fallback)
		if err != nil {
			return nil, err
		}
		out.ResourceVersion, out.Continue, out.RemainingItemCount = lm.GetResourceVersion(), lm.GetContinue(), lm.GetRemainingItemCount()
		for _, it := range items {
			out.Items = append(out.Items, convert(it))
		}
		return out, nil
	}
	err = decodeList(br, &out.ListMeta, func(it PT) error {
		out.Items = append(out.Items, convert(it))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("decode %s list: %w", resource, err)
	}
	return out, nil
}

// convert is toCached for one listed object.
func convert(obj runtime.Object) runtime.Object {
	c, _ := toCached(obj) // never fails: rejection is part of the result
	return c.(runtime.Object)
}
