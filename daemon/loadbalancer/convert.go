package loadbalancer

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/hivelet/hivelet/datapath"
)

// Labels and annotations with meaning to the agent.
const (
	// ServiceNameLabel ties an EndpointSlice to its Service.
	ServiceNameLabel = "kubernetes.io/service-name"
	// ServiceProxyNameLabel marks Services another proxy owns.
	ServiceProxyNameLabel = "service.kubernetes.io/service-proxy-name"
	// AlgorithmAnnotation picks how clients from outside the node are
	// spread over backends: "maglev" or "random" (overrides the agent's
	// --bpf-lb-algorithm for this Service).
	AlgorithmAnnotation = "service.hivelet.io/lb-algorithm"
)

// maxAffinitySeconds is the API's limit on sessionAffinityConfig's
// clientIP.timeoutSeconds (one day).
const maxAffinitySeconds = 86400

// Ignored explains why a valid Service has nothing to program; empty when
// it should be programmed.
func Ignored(svc *corev1.Service) string {
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		return "ExternalName Services are resolved by DNS"
	case svc.Spec.ClusterIP == corev1.ClusterIPNone:
		return "headless Services have no virtual IP"
	case svc.Labels[ServiceProxyNameLabel] != "":
		return "label " + ServiceProxyNameLabel + " hands it to another proxy"
	}
	return ""
}

func namespaceOr(ns string) string {
	if ns == "" {
		return "default"
	}
	return ns
}

// ConvertService validates a v1 Service and reduces it to the model. Every
// problem is reported with its field path. Call Ignored first: ignored
// Services are not converted.
func ConvertService(in *corev1.Service) (*Service, field.ErrorList) {
	var errs field.ErrorList
	meta, spec := field.NewPath("metadata"), field.NewPath("spec")
	if in.Name == "" {
		errs = append(errs, field.Required(meta.Child("name"), ""))
	}
	out := &Service{Name: ServiceName{Namespace: namespaceOr(in.Namespace), Name: in.Name}, Type: string(in.Spec.Type)}
	switch in.Spec.Type {
	case "":
		out.Type = string(corev1.ServiceTypeClusterIP)
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer:
	default:
		errs = append(errs, field.NotSupported(spec.Child("type"), in.Spec.Type,
			[]string{"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"}))
	}

	ips := in.Spec.ClusterIPs
	if len(ips) == 0 && in.Spec.ClusterIP != "" {
		ips = []string{in.Spec.ClusterIP}
	}
	if len(ips) > 0 && in.Spec.ClusterIP != "" && ips[0] != in.Spec.ClusterIP {
		errs = append(errs, field.Invalid(spec.Child("clusterIPs").Index(0), ips[0], "must match spec.clusterIP"))
	}
	if len(ips) == 0 {
		errs = append(errs, field.Required(spec.Child("clusterIP"),
			"no IP allocator runs here: set it (e.g. 10.96.0.10), or \"None\" for a headless Service"))
	}
	out.ClusterIPs, errs = parseIPs(ips, spec.Child("clusterIPs"), errs)
	if len(out.ClusterIPs) == 2 && out.ClusterIPs[0].Is4() == out.ClusterIPs[1].Is4() {
		errs = append(errs, field.Invalid(spec.Child("clusterIPs"), ips, "two cluster IPs must be of different families"))
	}
	out.ExternalIPs, errs = parseIPs(in.Spec.ExternalIPs, spec.Child("externalIPs"), errs)
	for i, ing := range in.Status.LoadBalancer.Ingress {
		if ing.IP == "" {
			continue // hostname-only ingress: nothing to program
		}
		var ip []netip.Addr
		ip, errs = parseIPs([]string{ing.IP}, field.NewPath("status", "loadBalancer", "ingress").Index(i).Child("ip"), errs)
		out.LoadBalancerIPs = append(out.LoadBalancerIPs, ip...)
	}

	out.InternalLocal = in.Spec.InternalTrafficPolicy != nil && *in.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal
	switch in.Spec.SessionAffinity {
	case "", corev1.ServiceAffinityNone:
	case corev1.ServiceAffinityClientIP:
		out.AffinityTimeout = uint32(corev1.DefaultClientIPServiceAffinitySeconds)
		if c := in.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			t := *c.ClientIP.TimeoutSeconds
			if t <= 0 || t > maxAffinitySeconds {
				errs = append(errs, field.Invalid(spec.Child("sessionAffinityConfig", "clientIP", "timeoutSeconds"), t,
					fmt.Sprintf("must be between 1 and %d", maxAffinitySeconds)))
			}
			out.AffinityTimeout = uint32(max(t, 0))
		}
	default:
		errs = append(errs, field.NotSupported(spec.Child("sessionAffinity"), in.Spec.SessionAffinity, []string{"None", "ClientIP"}))
	}
	external := in.Spec.Type == corev1.ServiceTypeNodePort || in.Spec.Type == corev1.ServiceTypeLoadBalancer
	switch in.Spec.ExternalTrafficPolicy {
	case "", corev1.ServiceExternalTrafficPolicyCluster:
	case corev1.ServiceExternalTrafficPolicyLocal:
		// Like kube-proxy: the policy only means something for Services
		// reachable from outside (ExternalIPs included).
		out.ExternalLocal = external || len(in.Spec.ExternalIPs) > 0
	default:
		errs = append(errs, field.NotSupported(spec.Child("externalTrafficPolicy"), in.Spec.ExternalTrafficPolicy, []string{"Cluster", "Local"}))
	}
	if in.Spec.HealthCheckNodePort != 0 && out.ExternalLocal {
		errs = append(errs, validPort(in.Spec.HealthCheckNodePort, spec.Child("healthCheckNodePort"), true)...)
		out.HealthCheckNodePort = uint16(in.Spec.HealthCheckNodePort)
	}
	for i, r := range in.Spec.LoadBalancerSourceRanges {
		p, err := netip.ParsePrefix(strings.TrimSpace(r))
		if err != nil {
			errs = append(errs, field.Invalid(spec.Child("loadBalancerSourceRanges").Index(i), r, "must be a CIDR such as 203.0.113.0/24"))
			continue
		}
		out.SourceRanges = append(out.SourceRanges, netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p)).Masked())
	}
	switch a := in.Annotations[AlgorithmAnnotation]; a {
	case "":
	case "maglev":
		out.Maglev = true
		out.AlgorithmSet = true
	case "random":
		out.AlgorithmSet = true
	default:
		errs = append(errs, field.NotSupported(meta.Child("annotations").Key(AlgorithmAnnotation), a, []string{"maglev", "random"}))
	}
	if len(in.Spec.Ports) == 0 {
		errs = append(errs, field.Required(spec.Child("ports"), "a Service needs at least one port"))
	}
	names := map[string]bool{}
	out.Ports = make([]ServicePort, 0, len(in.Spec.Ports))
	for i, p := range in.Spec.Ports {
		path := spec.Child("ports").Index(i)
		if len(in.Spec.Ports) > 1 && p.Name == "" {
			errs = append(errs, field.Required(path.Child("name"), "required when a Service has more than one port"))
		}
		if names[p.Name] {
			errs = append(errs, field.Duplicate(path.Child("name"), p.Name))
		}
		names[p.Name] = true
		proto, perrs := convertProto(p.Protocol, path.Child("protocol"))
		errs = append(errs, perrs...)
		errs = append(errs, validPort(p.Port, path.Child("port"), false)...)
		errs = append(errs, validPort(p.NodePort, path.Child("nodePort"), true)...)
		out.Ports = append(out.Ports, ServicePort{Name: p.Name, Proto: proto, Port: uint16(p.Port), NodePort: uint16(p.NodePort)})
	}
	return out, errs
}

// ConvertEndpointSlice validates a discovery.k8s.io/v1 EndpointSlice and
// reduces it to the model. FQDN slices return (nil, nil): nothing to do.
func ConvertEndpointSlice(in *discoveryv1.EndpointSlice) (*EndpointSlice, field.ErrorList) {
	var errs field.ErrorList
	meta := field.NewPath("metadata")
	if in.Name == "" {
		errs = append(errs, field.Required(meta.Child("name"), ""))
	}
	svc := in.Labels[ServiceNameLabel]
	if svc == "" {
		errs = append(errs, field.Required(meta.Child("labels").Key(ServiceNameLabel), "names the Service this slice belongs to"))
	}
	out := &EndpointSlice{
		Namespace: namespaceOr(in.Namespace),
		Name:      in.Name,
		Service:   ServiceName{Namespace: namespaceOr(in.Namespace), Name: svc},
	}
	if v, ok := in.Annotations[corev1.EndpointsLastChangeTriggerTime]; ok {
		// A malformed time only loses a latency sample.
		out.TriggerTime, _ = time.Parse(time.RFC3339Nano, v)
	}
	switch in.AddressType {
	case discoveryv1.AddressTypeIPv4:
	case discoveryv1.AddressTypeIPv6:
		out.IPv6 = true
	case discoveryv1.AddressTypeFQDN:
		return nil, errs
	default:
		return nil, append(errs, field.NotSupported(field.NewPath("addressType"), in.AddressType, []string{"IPv4", "IPv6", "FQDN"}))
	}
	out.Ports = make([]EndpointPort, 0, len(in.Ports))
	out.Endpoints = make([]Endpoint, 0, len(in.Endpoints))
	for i, p := range in.Ports {
		path := field.NewPath("ports").Index(i)
		proto := datapath.TCP
		if p.Protocol != nil {
			var perrs field.ErrorList
			proto, perrs = convertProto(*p.Protocol, path.Child("protocol"))
			errs = append(errs, perrs...)
		}
		ep := EndpointPort{Proto: proto}
		if p.Name != nil {
			ep.Name = *p.Name
		}
		if p.Port != nil {
			errs = append(errs, validPort(*p.Port, path.Child("port"), false)...)
			ep.Port = uint16(*p.Port)
		}
		out.Ports = append(out.Ports, ep)
	}
	for i, e := range in.Endpoints {
		path := field.NewPath("endpoints").Index(i)
		if len(e.Addresses) == 0 {
			errs = append(errs, field.Required(path.Child("addresses"), ""))
		}
		var addrs []netip.Addr
		addrs, errs = parseIPs(e.Addresses, path.Child("addresses"), errs)
		for j, a := range addrs {
			if a.Is6() != out.IPv6 {
				errs = append(errs, field.Invalid(path.Child("addresses").Index(j), a.String(),
					fmt.Sprintf("not an %s address", in.AddressType)))
			}
		}
		if len(addrs) == 0 {
			continue // reported above
		}
		ep := Endpoint{
			Addr: addrs[0],
			// Unset conditions mean ready/serving, as the API documents.
			Ready:       e.Conditions.Ready == nil || *e.Conditions.Ready,
			Terminating: e.Conditions.Terminating != nil && *e.Conditions.Terminating,
		}
		ep.Serving = ep.Ready
		if e.Conditions.Serving != nil {
			ep.Serving = *e.Conditions.Serving
		}
		if e.NodeName != nil {
			ep.NodeName = *e.NodeName
		}
		if e.Zone != nil {
			ep.Zone = *e.Zone
		}
		if h := e.Hints; h != nil && (len(h.ForZones) > 0 || len(h.ForNodes) > 0) {
			ep.Hints = &Hints{}
			for _, z := range h.ForZones {
				ep.Hints.ForZones = append(ep.Hints.ForZones, z.Name)
			}
			for _, n := range h.ForNodes {
				ep.Hints.ForNodes = append(ep.Hints.ForNodes, n.Name)
			}
		}
		out.Endpoints = append(out.Endpoints, ep)
	}
	return out, errs
}

func parseIPs(in []string, path *field.Path, errs field.ErrorList) ([]netip.Addr, field.ErrorList) {
	if len(in) == 0 {
		return nil, errs
	}
	out := make([]netip.Addr, 0, len(in))
	for i, s := range in {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			errs = append(errs, field.Invalid(path.Index(i), s, "must be an IPv4 or IPv6 address"))
			continue
		}
		out = append(out, a.Unmap())
	}
	return out, errs
}

func convertProto(p corev1.Protocol, path *field.Path) (datapath.L4Proto, field.ErrorList) {
	if p == "" {
		return datapath.TCP, nil
	}
	proto, err := datapath.ParseL4Proto(string(p))
	if err != nil || string(p) != proto.String() {
		return 0, field.ErrorList{field.NotSupported(path, p, []string{"TCP", "UDP", "SCTP"})}
	}
	return proto, nil
}

func validPort(p int32, path *field.Path, zeroOK bool) field.ErrorList {
	if (p == 0 && zeroOK) || (p >= 1 && p <= 65535) {
		return nil
	}
	return field.ErrorList{field.Invalid(path, p, "must be between 1 and 65535, inclusive")}
}

// unmapBits is how many prefix bits a v4-mapped IPv6 prefix loses when
// its address is unmapped.
func unmapBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return 96
	}
	return 0
}
