package k8s

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
)

func managed() []metav1.ManagedFieldsEntry {
	return []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply, APIVersion: "v1",
		FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:ports":{}}}`)}}}
}

func testService(i int) corev1.Service {
	return corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%d", i), Namespace: "ns", UID: "u", ResourceVersion: fmt.Sprint(100 + i),
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
		ObjectMeta:  metav1.ObjectMeta{Name: fmt.Sprintf("svc-%d-1", i), Namespace: "ns", Labels: map[string]string{discoveryv1.LabelServiceName: "svc"}, ManagedFields: managed()},
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

func withoutManaged[T any](items []T, meta func(*T) *metav1.ObjectMeta) []T {
	out := append([]T(nil), items...)
	for i := range out {
		meta(&out[i]).ManagedFields = nil
	}
	return out
}

// Lists decode to what the client's decoding gives, less managedFields.
func TestDecodeList(t *testing.T) {
	svcs := &corev1.ServiceList{ListMeta: metav1.ListMeta{ResourceVersion: "77", Continue: "next"}, Items: []corev1.Service{testService(1), testService(2)}}
	var lm metav1.ListMeta
	got, err := decodeList[corev1.Service](encode(t, svcs), &lm)
	if err != nil {
		t.Fatal(err)
	}
	if want := withoutManaged(svcs.Items, func(s *corev1.Service) *metav1.ObjectMeta { return &s.ObjectMeta }); !reflect.DeepEqual(got, want) {
		t.Errorf("Services decoded as\n%+v\nwant\n%+v", got, want)
	}
	if lm.ResourceVersion != "77" || lm.Continue != "next" {
		t.Errorf("list metadata %+v, want resourceVersion 77 and the continue token", lm)
	}

	slices := &discoveryv1.EndpointSliceList{Items: []discoveryv1.EndpointSlice{testSlice(1)}}
	gotSlices, err := decodeList[discoveryv1.EndpointSlice](encode(t, slices), &lm)
	if err != nil {
		t.Fatal(err)
	}
	if want := withoutManaged(slices.Items, func(s *discoveryv1.EndpointSlice) *metav1.ObjectMeta { return &s.ObjectMeta }); !reflect.DeepEqual(gotSlices, want) {
		t.Errorf("EndpointSlices decoded as\n%+v\nwant\n%+v", gotSlices, want)
	}

	empty, err := decodeList[corev1.Service](encode(t, &corev1.ServiceList{}), &lm)
	if err != nil || len(empty) != 0 {
		t.Errorf("empty list: %v items, err %v", len(empty), err)
	}
}

// managedFields anywhere in the metadata are left out, and only they.
func TestWithoutManagedFields(t *testing.T) {
	meta := metav1.ObjectMeta{Name: "a", ManagedFields: managed()}
	b, err := meta.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// A field after managedFields (as another encoder may write it).
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendString(b, "ns")
	trimmed, err := withoutManagedFields(b)
	if err != nil {
		t.Fatal(err)
	}
	var got metav1.ObjectMeta
	if err := got.Unmarshal(trimmed); err != nil {
		t.Fatal(err)
	}
	if got.Name != "a" || got.Namespace != "ns" || got.ManagedFields != nil {
		t.Errorf("got %+v, want name a, namespace ns and no managedFields", got)
	}
}

// Bad bodies are errors, never a partial list taken as the whole.
func TestDecodeListRejects(t *testing.T) {
	good := encode(t, &corev1.ServiceList{Items: []corev1.Service{testService(1)}})
	encoded := append([]byte(nil), protobufMagic...)
	encoded = protowire.AppendTag(encoded, unknownContentEncoding, protowire.BytesType)
	encoded = protowire.AppendString(encoded, "gzip")
	for name, body := range map[string][]byte{
		"truncated":        good[:len(good)-7],
		"not protobuf":     []byte(`{"kind":"ServiceList"}`),
		"content encoding": encoded,
	} {
		var lm metav1.ListMeta
		if items, err := decodeList[corev1.Service](body, &lm); err == nil {
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
				if kind == "services" {
					_, err = decodeList[corev1.Service](bodies[kind], &lm)
				} else {
					_, err = decodeList[discoveryv1.EndpointSlice](bodies[kind], &lm)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
