// Package loadbalancer is the agent's pure-Go service model: Services and
// EndpointSlices reduced to what load balancing needs, and the function
// that turns them into datapath frontends with their backends. It knows
// nothing of BPF or of where objects come from.
package loadbalancer

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/hivelet/hivelet/datapath"
)

// ServiceName is a Service's namespace and name.
type ServiceName struct {
	Namespace string
	Name      string
}

func (n ServiceName) String() string { return n.Namespace + "/" + n.Name }

// ServicePort is one entry of spec.ports.
type ServicePort struct {
	Name     string
	Proto    datapath.L4Proto
	Port     uint16
	NodePort uint16
}

// Service is a Kubernetes Service as the load balancer sees it.
type Service struct {
	Name        ServiceName
	Type        string // ClusterIP, NodePort, LoadBalancer; TypeHostPort for a pod's hostPorts
	ClusterIPs  []netip.Addr
	ExternalIPs []netip.Addr
	// LoadBalancerIPs are status.loadBalancer.ingress[].ip.
	LoadBalancerIPs []netip.Addr
	Ports           []ServicePort
	// InternalLocal is internalTrafficPolicy: Local.
	InternalLocal bool
	// AffinityTimeout is sessionAffinity ClientIP's timeout in seconds; 0
	// without affinity.
	AffinityTimeout uint32
	// ExternalLocal is externalTrafficPolicy: Local (NodePort and
	// LoadBalancer Services): clients from outside reach only this node's
	// endpoints and keep their address.
	ExternalLocal bool
	// HealthCheckNodePort is spec.healthCheckNodePort, served with the
	// local endpoint count for external load balancers; 0 without.
	HealthCheckNodePort uint16
	// SourceRanges are spec.loadBalancerSourceRanges; empty admits all.
	SourceRanges []netip.Prefix
	// Maglev selects Maglev hashing for clients from outside (annotation
	// AlgorithmAnnotation, or the agent's default when AlgorithmSet is
	// false).
	Maglev       bool
	AlgorithmSet bool
	// HostPorts are a pod's hostPorts (Type TypeHostPort, nothing else set).
	HostPorts []HostPort
	// Selector is kept for Services read from manifests only: with no
	// API server there is no EndpointSlice controller, and `hivelet node`
	// finds their endpoints among its own pods. Nil otherwise.
	Selector *Selector
}

// Selector is a Service's spec.selector and what each of its ports
// targets on the selected pods.
type Selector struct {
	Labels map[string]string
	Ports  []TargetPort
}

// TargetPort is one spec.ports entry's targetPort: a number, or the name
// of a container port (resolved per pod, as the EndpointSlice controller
// does).
type TargetPort struct {
	Name   string // the Service port's name, which the slice port carries
	Proto  datapath.L4Proto
	Number uint16
	Named  string
}

// EndpointPort is one entry of an EndpointSlice's ports.
type EndpointPort struct {
	Name  string
	Proto datapath.L4Proto
	Port  uint16
}

// Endpoint is one entry of an EndpointSlice's endpoints. Only the first
// of its addresses is used, as kube-proxy does: the API declares them
// fungible.
type Endpoint struct {
	Addr        netip.Addr
	Ready       bool
	Serving     bool
	Terminating bool
	NodeName    string
	Zone        string
	// Hints are the topology hints the EndpointSlice controller sets for
	// trafficDistribution; nil without (most endpoints: a pointer keeps
	// the common case small).
	Hints *Hints
}

// Hints are an endpoint's topology hints.
type Hints struct {
	ForZones []string
	ForNodes []string
}

func (e *Endpoint) forZones() []string {
	if e.Hints == nil {
		return nil
	}
	return e.Hints.ForZones
}

func (e *Endpoint) forNodes() []string {
	if e.Hints == nil {
		return nil
	}
	return e.Hints.ForNodes
}

// EndpointSlice is a discovery.k8s.io/v1 EndpointSlice of one address
// family.
type EndpointSlice struct {
	Namespace string
	Name      string
	Service   ServiceName
	IPv6      bool
	Ports     []EndpointPort
	Endpoints []Endpoint
	// TriggerTime is when the change this version reflects happened
	// (annotation endpoints.kubernetes.io/last-change-trigger-time);
	// zero when unknown. It feeds the network-programming latency.
	TriggerTime time.Time
}

// Key names the slice uniquely.
func (s *EndpointSlice) Key() string { return s.Namespace + "/" + s.Name }

// Entry is one frontend a Service asks for, with the backends it should
// send to, in a stable order.
type Entry struct {
	Frontend        datapath.Frontend
	Flags           datapath.ServiceFlags
	Backends        []datapath.Backend
	AffinityTimeout uint32
	Algorithm       datapath.Algorithm
	SourceRanges    []netip.Prefix // with datapath.FlagSourceRanges
}

func (e Entry) String() string {
	return fmt.Sprintf("%s (%s, %d backends)", e.Frontend, e.Flags.Type(), len(e.Backends))
}

// Change is the frontends one Service wants now; Entries is nil when the
// Service is gone.
type Change struct {
	Name    ServiceName
	Entries []Entry
	// Health is set for Services with a healthCheckNodePort.
	Health *Health
}

// Health is what a Service's healthCheckNodePort reports.
type Health struct {
	Port           uint16
	LocalEndpoints int
}
