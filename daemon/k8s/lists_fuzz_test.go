package k8s

import (
	"bytes"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
)

// FuzzDecodeList feeds list bodies as an API server (or whatever sits
// between it and the agent) might send them: never a panic, never an
// item past a decoding error, and every item handed over converts or is
// refused with field errors, as the informers do with it.
func FuzzDecodeList(f *testing.F) {
	f.Add(encode(f, &corev1.ServiceList{ListMeta: metav1.ListMeta{ResourceVersion: "7"}, Items: []corev1.Service{testService(1), testService(2)}}))
	f.Add(encode(f, &discoveryv1.EndpointSliceList{Items: []discoveryv1.EndpointSlice{testSlice(1)}}))
	f.Add(protobufMagic)
	f.Add([]byte("k8s\x00\x12\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, body []byte) {
		var lm metav1.ListMeta
		failed := false
		err := decodeList(bytes.NewReader(body), &lm, func(s *corev1.Service) error {
			if failed {
				t.Fatal("an item after a decoding error")
			}
			if lb.Ignored(s) == "" {
				_, _ = lb.ConvertService(s)
			}
			return nil
		})
		failed = err != nil
		_ = decodeList(bytes.NewReader(body), &lm, func(s *discoveryv1.EndpointSlice) error {
			_, _ = lb.ConvertEndpointSlice(s)
			return nil
		})
	})
}
