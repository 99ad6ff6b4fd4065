package loadbalancer

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/hivelet/hivelet/datapath"
)

func TestConvertSelector(t *testing.T) {
	svc := func(sel map[string]string, tps ...intstr.IntOrString) *corev1.Service {
		s := &corev1.Service{Spec: corev1.ServiceSpec{Selector: sel}}
		for i, tp := range tps {
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: string(rune('a' + i)), Port: int32(80 + i), TargetPort: tp, Protocol: corev1.ProtocolUDP})
		}
		return s
	}
	ports := func(n int) []ServicePort {
		var out []ServicePort
		for i := range n {
			out = append(out, ServicePort{Name: string(rune('a' + i)), Proto: datapath.UDP, Port: uint16(80 + i)})
		}
		return out
	}
	if sel, errs := ConvertSelector(svc(nil, intstr.FromInt32(8080)), ports(1)); sel != nil || errs != nil {
		t.Errorf("no selector: %v %v", sel, errs)
	}
	sel, errs := ConvertSelector(svc(map[string]string{"app": "web"}, intstr.FromInt32(8080), intstr.FromString("dns"), intstr.IntOrString{}), ports(3))
	if errs != nil {
		t.Fatal(errs)
	}
	want := []TargetPort{{Name: "a", Proto: datapath.UDP, Number: 8080}, {Name: "b", Proto: datapath.UDP, Named: "dns"}, {Name: "c", Proto: datapath.UDP, Number: 82}}
	for i, w := range want {
		if sel.Ports[i] != w {
			t.Errorf("port %d: %+v, want %+v", i, sel.Ports[i], w)
		}
	}
	for name, bad := range map[string]*corev1.Service{
		"target port out of range": svc(map[string]string{"app": "web"}, intstr.FromInt32(70000)),
		"target port name":         svc(map[string]string{"app": "web"}, intstr.FromString("not a name")),
		"selector key":             svc(map[string]string{"a/b/c": "web"}, intstr.FromInt32(80)),
		"selector value":           svc(map[string]string{"app": strings.Repeat("x", 64)}, intstr.FromInt32(80)),
	} {
		if _, errs := ConvertSelector(bad, ports(len(bad.Spec.Ports))); len(errs) == 0 {
			t.Errorf("%s: accepted", name)
		}
	}
}
