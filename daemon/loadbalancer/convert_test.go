package loadbalancer

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func validService() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec: corev1.ServiceSpec{
			ClusterIP:  "10.96.0.10",
			ClusterIPs: []string{"10.96.0.10"},
			Ports:      []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
		},
	}
}

func TestConvertServiceRejectsBadInput(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*corev1.Service)
		wantErr string // a field path and reason the user can act on
	}{
		{"port out of range", func(s *corev1.Service) { s.Spec.Ports[0].Port = 70000 }, "spec.ports[0].port: Invalid value: 70000"},
		{"unknown protocol", func(s *corev1.Service) { s.Spec.Ports[0].Protocol = "HTTP" }, `spec.ports[0].protocol: Unsupported value: "HTTP"`},
		{"bad cluster IP", func(s *corev1.Service) { s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.300", nil }, `spec.clusterIPs[0]: Invalid value: "10.96.0.300"`},
		{"no cluster IP", func(s *corev1.Service) { s.Spec.ClusterIP, s.Spec.ClusterIPs = "", nil }, "spec.clusterIP: Required value"},
		{"clusterIPs disagree", func(s *corev1.Service) { s.Spec.ClusterIPs = []string{"10.96.0.11"} }, "spec.clusterIPs[0]: Invalid value"},
		{"two IPs of one family", func(s *corev1.Service) { s.Spec.ClusterIPs = []string{"10.96.0.10", "10.96.0.11"} }, "spec.clusterIPs: Invalid value"},
		{"no name", func(s *corev1.Service) { s.Name = "" }, "metadata.name: Required value"},
		{"no ports", func(s *corev1.Service) { s.Spec.Ports = nil }, "spec.ports: Required value"},
		{"unnamed port among several", func(s *corev1.Service) {
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Port: 443})
		}, "spec.ports[1].name: Required value"},
		{"duplicate port name", func(s *corev1.Service) {
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "http", Port: 443})
		}, `spec.ports[1].name: Duplicate value: "http"`},
		{"bad external IP", func(s *corev1.Service) { s.Spec.ExternalIPs = []string{"example.com"} }, `spec.externalIPs[0]: Invalid value: "example.com"`},
		{"bad type", func(s *corev1.Service) { s.Spec.Type = "Magic" }, `spec.type: Unsupported value: "Magic"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validService()
			tt.mutate(s)
			_, errs := ConvertService(s)
			if err := errs.ToAggregate(); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestConvertServiceValid(t *testing.T) {
	s := validService()
	s.Spec.ClusterIPs = []string{"10.96.0.10", "fd00::10"}
	s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.7"}, {Hostname: "lb.example.com"}}
	got, errs := ConvertService(s)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	if got.Name != (ServiceName{"shop", "web"}) || got.Type != "ClusterIP" || len(got.ClusterIPs) != 2 ||
		len(got.LoadBalancerIPs) != 1 || got.Ports[0].Port != 80 {
		t.Errorf("got %+v", got)
	}
}

func TestIgnored(t *testing.T) {
	headless := validService()
	headless.Spec.ClusterIP = corev1.ClusterIPNone
	external := validService()
	external.Spec.Type = corev1.ServiceTypeExternalName
	other := validService()
	other.Labels = map[string]string{ServiceProxyNameLabel: "other-proxy"}
	for _, s := range []*corev1.Service{headless, external, other} {
		if Ignored(s) == "" {
			t.Errorf("Ignored(%+v) = \"\", want a reason", s.Spec)
		}
	}
	if r := Ignored(validService()); r != "" {
		t.Errorf("a plain ClusterIP Service is ignored: %s", r)
	}
}

func TestConvertEndpointSlice(t *testing.T) {
	slice := func() *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: "web-1", Namespace: "shop", Labels: map[string]string{ServiceNameLabel: "web"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080)}},
			Endpoints: []discoveryv1.Endpoint{
				{Addresses: []string{"10.0.0.1"}},
				{Addresses: []string{"10.0.0.2"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(true), Terminating: ptr.To(true)}},
			},
		}
	}
	got, errs := ConvertEndpointSlice(slice())
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	if got.Service != (ServiceName{"shop", "web"}) || !got.Endpoints[0].Ready || !got.Endpoints[0].Serving ||
		got.Endpoints[1].Ready || !got.Endpoints[1].Serving || !got.Endpoints[1].Terminating {
		t.Errorf("got %+v", got)
	}

	bad := []struct {
		name    string
		mutate  func(*discoveryv1.EndpointSlice)
		wantErr string
	}{
		{"no service label", func(s *discoveryv1.EndpointSlice) { s.Labels = nil }, "metadata.labels[kubernetes.io/service-name]: Required value"},
		{"wrong family", func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Addresses = []string{"fd00::1"} }, `endpoints[0].addresses[0]: Invalid value: "fd00::1": not an IPv4 address`},
		{"not an address", func(s *discoveryv1.EndpointSlice) { s.Endpoints[1].Addresses = []string{"pod-a"} }, `endpoints[1].addresses[0]: Invalid value: "pod-a"`},
		{"port out of range", func(s *discoveryv1.EndpointSlice) { s.Ports[0].Port = ptr.To[int32](-1) }, "ports[0].port: Invalid value: -1"},
		{"bad address type", func(s *discoveryv1.EndpointSlice) { s.AddressType = "IPv5" }, `addressType: Unsupported value: "IPv5"`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			s := slice()
			tt.mutate(s)
			_, errs := ConvertEndpointSlice(s)
			if err := errs.ToAggregate(); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestConvertSessionAffinity(t *testing.T) {
	for _, tt := range []struct {
		name    string
		mutate  func(*corev1.Service)
		want    uint32
		wantErr string
	}{
		{"none", func(*corev1.Service) {}, 0, ""},
		{"ClientIP with the default timeout", func(s *corev1.Service) { s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP }, 10800, ""},
		{"ClientIP with a timeout", func(s *corev1.Service) {
			s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
			s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](30)}}
		}, 30, ""},
		{"timeout out of range", func(s *corev1.Service) {
			s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
			s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](86401)}}
		}, 0, "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 86401"},
		{"unknown affinity", func(s *corev1.Service) { s.Spec.SessionAffinity = "Cookie" }, 0, `spec.sessionAffinity: Unsupported value: "Cookie"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := validService()
			tt.mutate(s)
			got, errs := ConvertService(s)
			if tt.wantErr != "" {
				if err := errs.ToAggregate(); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if len(errs) != 0 || got.AffinityTimeout != tt.want {
				t.Errorf("timeout = %d (%v), want %d", got.AffinityTimeout, errs, tt.want)
			}
		})
	}
}

func TestConvertExternalFields(t *testing.T) {
	in := validService()
	in.Spec.Type = corev1.ServiceTypeLoadBalancer
	in.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	in.Spec.HealthCheckNodePort = 32000
	in.Spec.LoadBalancerSourceRanges = []string{"203.0.113.0/24", " 2001:db8::/32", "192.0.2.7/24"}
	in.Annotations = map[string]string{AlgorithmAnnotation: "maglev"}
	out, errs := ConvertService(in)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	want := []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("192.0.2.0/24")}
	if !out.ExternalLocal || out.HealthCheckNodePort != 32000 || !reflect.DeepEqual(out.SourceRanges, want) || !out.Maglev || !out.AlgorithmSet {
		t.Errorf("got local=%v hc=%d ranges=%v maglev=%v", out.ExternalLocal, out.HealthCheckNodePort, out.SourceRanges, out.Maglev)
	}

	// A ClusterIP Service has no external traffic to keep local.
	in = validService()
	in.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	if out, _ := ConvertService(in); out.ExternalLocal {
		t.Error("externalTrafficPolicy Local honoured on a ClusterIP Service without external IPs")
	}

	for _, bad := range []func(*corev1.Service){
		func(s *corev1.Service) { s.Spec.LoadBalancerSourceRanges = []string{"203.0.113.0"} },
		func(s *corev1.Service) { s.Annotations = map[string]string{AlgorithmAnnotation: "round-robin"} },
		func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = "Nearby" },
	} {
		in := validService()
		bad(in)
		if _, errs := ConvertService(in); len(errs) == 0 {
			t.Errorf("accepted %+v", in.Spec)
		}
	}
}
