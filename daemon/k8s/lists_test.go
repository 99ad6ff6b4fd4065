package k8s

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"testing/iotest"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

func managed() []metav1.ManagedFieldsEntry {
	return []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply, APIVersion: "v1",
		FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:ports":{}}}`)}}}
}

// uid is a UID as the API server makes them.
func uid(i int) types.UID { return types.UID(fmt.Sprintf("0f3c2a4e-7d1b-4c59-9e8a-%012d", i)) }

var created = metav1.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// testService and testSlice carry the metadata the API server and the
// EndpointSlice controller write, read by the agent or not.
func testService(i int) corev1.Service {
	return corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%d", i), Namespace: "ns", UID: uid(i), ResourceVersion: fmt.Sprint(100 + i), CreationTimestamp: created,
			Labels: map[string]string{"app": "web"}, Annotations: map[string]string{corev1.EndpointsLastChangeTriggerTime: "t"},
			ManagedFields: managed()},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.96.0.1", ClusterIPs: []string{"10.96.0.1"},
			Ports:                 []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromString("web"), NodePort: 30080}},
			ExternalIPs:           []string{"192.0.2.9"},
			InternalTrafficPolicy: ptr.To(corev1.ServiceInternalTrafficPolicyLocal)},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "198.51.100.4"}}}},
	}
}

func testSlice(i int) discoveryv1.EndpointSlice {
	return discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%d-1", i), Namespace: "ns", UID: uid(i), CreationTimestamp: created, Generation: 1,
			Labels: map[string]string{discoveryv1.LabelServiceName: "svc", "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: fmt.Sprintf("svc-%d", i), UID: uid(i),
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
			ManagedFields: managed()},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			NodeName: ptr.To("n1"), Zone: ptr.To("z"), Hints: &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: "z"}}}}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
}

func encode(t testing.TB, obj runtime.Object) []byte {
	var buf bytes.Buffer
	if err := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme).Encode(obj, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// keptOnly is items with only the metadata the agent reads.
func keptOnly[T any](items []T, meta func(*T) *metav1.ObjectMeta) []T {
	out := append([]T(nil), items...)
	for i := range out {
		m := meta(&out[i])
		*m = metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, ResourceVersion: m.ResourceVersion, Labels: m.Labels, Annotations: m.Annotations}
	}
	return out
}

// collect decodes a list body read a few bytes at a time, as it streams
// in, and returns copies of its items.
func collect[T any, PT listItem[T]](body []byte, lm *metav1.ListMeta) ([]T, error) {
	var items []T
	err := decodeList(iotest.HalfReader(bytes.NewReader(body)), lm, func(it PT) error {
		items = append(items, *it)
		return nil
	})
	return items, err
}

// Lists decode to what the client's decoding gives, with only the metadata
// the agent reads.
func TestDecodeList(t *testing.T) {
	svcs := &corev1.ServiceList{ListMeta: metav1.ListMeta{ResourceVersion: "77", Continue: "next"}, Items: []corev1.Service{testService(1), testService(2)}}
	var lm metav1.ListMeta
	got, err := collect[corev1.Service](encode(t, svcs), &lm)
	if err != nil {
		t.Fatal(err)
	}
	if want := keptOnly(svcs.Items, func(s *corev1.Service) *metav1.ObjectMeta { return &s.ObjectMeta }); !reflect.DeepEqual(got, want) {
		t.Errorf("Services decoded as\n%+v\nwant\n%+v", got, want)
	}
	if lm.ResourceVersion != "77" || lm.Continue != "next" {
		t.Errorf("list metadata %+v, want resourceVersion 77 and the continue token", lm)
	}

	slices := &discoveryv1.EndpointSliceList{Items: []discoveryv1.EndpointSlice{testSlice(1)}}
	gotSlices, err := collect[discoveryv1.EndpointSlice](encode(t, slices), &lm)
	if err != nil {
		t.Fatal(err)
	}
	if want := keptOnly(slices.Items, func(s *discoveryv1.EndpointSlice) *metav1.ObjectMeta { return &s.ObjectMeta }); !reflect.DeepEqual(gotSlices, want) {
		t.Errorf("EndpointSlices decoded as\n%+v\nwant\n%+v", gotSlices, want)
	}

	empty, err := collect[corev1.Service](encode(t, &corev1.ServiceList{}), &lm)
	if err != nil || len(empty) != 0 {
		t.Errorf("empty list: %v items, err %v", len(empty), err)
	}
}

// Only name, namespace, resourceVersion, labels and annotations are kept,
// wherever the fields sit.
func TestKeepMeta(t *testing.T) {
	meta := metav1.ObjectMeta{Name: "a", UID: "u-1", ResourceVersion: "7", Generation: 3, Labels: map[string]string{"l": "1"},
		Annotations: map[string]string{"n": "2"}, Finalizers: []string{"f"}, ManagedFields: managed(),
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: "a", UID: "u-2"}}}
	b, err := meta.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// A field after managedFields (as another encoder may write it).
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendString(b, "ns")
	kept, scratch, err := keepMeta(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got metav1.ObjectMeta
	if err := got.Unmarshal(kept); err != nil {
		t.Fatal(err)
	}
	want := metav1.ObjectMeta{Name: "a", Namespace: "ns", ResourceVersion: "7", Labels: meta.Labels, Annotations: meta.Annotations}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	// The scratch buffer is reused.
	if kept2, _, err := keepMeta(b, scratch); err != nil || &kept2[0] != &scratch[:1][0] {
		t.Errorf("scratch buffer not reused (err %v)", err)
	}
}

// Bad bodies are errors, never a partial list taken as the whole.
func TestDecodeListRejects(t *testing.T) {
	good := encode(t, &corev1.ServiceList{Items: []corev1.Service{testService(1)}})
	encoded := append([]byte(nil), protobufMagic...)
	encoded = protowire.AppendTag(encoded, unknownContentEncoding, protowire.BytesType)
	encoded = protowire.AppendString(encoded, "gzip")
	for name, body := range map[string][]byte{
		"truncated":           good[:len(good)-7],
		"cut in a varint":     append(append([]byte(nil), protobufMagic...), 0x12, 0xff),
		"item over the limit": protowire.AppendVarint(protowire.AppendTag(protowire.AppendVarint(protowire.AppendTag(append([]byte(nil), protobufMagic...), unknownRaw, protowire.BytesType), 1<<30), listItems, protowire.BytesType), 1<<29),
		"not protobuf":        []byte(`{"kind":"ServiceList"}`),
		"content encoding":    encoded,
	} {
		var lm metav1.ListMeta
		if items, err := collect[corev1.Service](body, &lm); err == nil {
			t.Errorf("%s: decoded %d items, want an error", name, len(items))
		}
	}
}

// BenchmarkDecodeList: the initial list of 10k Services and of their 10k
// EndpointSlices, each with a managedFields entry as the API server keeps
// them, by the client's decoding and by decodeList.
func BenchmarkDecodeList(b *testing.B) {
	const n = 10_000
	svcs, slices := &corev1.ServiceList{}, &discoveryv1.EndpointSliceList{}
	for i := range n {
		svcs.Items = append(svcs.Items, testService(i))
		slices.Items = append(slices.Items, testSlice(i))
	}
	bodies := map[string][]byte{"services": encode(b, svcs), "endpointslices": encode(b, slices)}
	codec := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
	for _, kind := range []string{"services", "endpointslices"} {
		b.Run("kind="+kind+"/decoder=client", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var into runtime.Object = &corev1.ServiceList{}
				if kind == "endpointslices" {
					into = &discoveryv1.EndpointSliceList{}
				}
				if _, _, err := codec.Decode(bodies[kind], nil, into); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("kind="+kind+"/decoder=decodeList", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var lm metav1.ListMeta
				var err error
				r := bytes.NewReader(bodies[kind])
				if kind == "services" {
					err = decodeList(r, &lm, func(*corev1.Service) error { return nil })
				} else {
					err = decodeList(r, &lm, func(*discoveryv1.EndpointSlice) error { return nil })
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// list streams a protobuf body and converts every item; a JSON body (an
// API server or proxy that will not speak protobuf) takes the client's
// decoding to the same result.
func TestListConverts(t *testing.T) {
	svcs := &corev1.ServiceList{ListMeta: metav1.ListMeta{ResourceVersion: "88"}, Items: []corev1.Service{testService(1), testService(2)}}
	svcs.Kind, svcs.APIVersion = "ServiceList", "v1"
	bodies := map[string][]byte{runtime.ContentTypeProtobuf: encode(t, svcs)}
	js, err := json.Marshal(svcs)
	if err != nil {
		t.Fatal(err)
	}
	bodies[runtime.ContentTypeJSON] = js
	for ct, body := range bodies {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/api/v1/services" || r.URL.Query().Get("resourceVersion") != "0" {
				t.Errorf("%s: request %s", ct, r.URL)
			}
			w.Header().Set("Content-Type", ct)
			_, _ = w.Write(body)
		}))
		rc, err := rest.RESTClientFor(&rest.Config{Host: srv.URL, APIPath: "/api",
			ContentConfig: rest.ContentConfig{GroupVersion: &corev1.SchemeGroupVersion, NegotiatedSerializer: scheme.Codecs.WithoutConversion()}})
		if err != nil {
			t.Fatal(err)
		}
		obj, err := list[corev1.Service](context.Background(), rc, "services", metav1.ListOptions{ResourceVersion: "0"}, &corev1.ServiceList{})
		srv.Close()
		if err != nil {
			t.Fatalf("%s: %v", ct, err)
		}
		l := obj.(*cachedList)
		if l.ResourceVersion != "88" || len(l.Items) != 2 {
			t.Fatalf("%s: list at %q with %d items, want 88 and 2", ct, l.ResourceVersion, len(l.Items))
		}
		for i, it := range l.Items {
			c, ok := it.(*cachedService)
			if !ok || c.Name != svcs.Items[i].Name || c.ResourceVersion != svcs.Items[i].ResourceVersion || c.model == nil {
				t.Errorf("%s: item %d is %#v, want the converted %s", ct, i, it, svcs.Items[i].Name)
			}
		}
	}
}
