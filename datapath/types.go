package datapath

import (
	"fmt"
	"net/netip"
	"strings"
)

// L4Proto is an IANA protocol number, as the BPF maps store it.
type L4Proto uint8

const (
	TCP  L4Proto = 6
	UDP  L4Proto = 17
	SCTP L4Proto = 132
)

func (p L4Proto) String() string {
	switch p {
	case TCP:
		return "TCP"
	case UDP:
		return "UDP"
	case SCTP:
		return "SCTP"
	}
	return fmt.Sprintf("proto(%d)", uint8(p))
}

// ParseL4Proto accepts the Kubernetes spelling (TCP, UDP, SCTP), any case.
func ParseL4Proto(s string) (L4Proto, error) {
	switch strings.ToUpper(s) {
	case "TCP":
		return TCP, nil
	case "UDP":
		return UDP, nil
	case "SCTP":
		return SCTP, nil
	}
	return 0, fmt.Errorf("unknown protocol %q (want TCP, UDP or SCTP)", s)
}

// Scope selects which backend set of a frontend a lookup sees. Must match
// enum lb_scope in bpf/lib/maps.h: ScopeExternal holds every frontend with
// all its backends; a frontend of an externalTrafficPolicy Local Service
// also has a ScopeLocal entry with this node's backends only, which
// clients from outside the node use.
type Scope uint8

const (
	ScopeExternal Scope = 0
	ScopeLocal    Scope = 1
)

// Algorithm mirrors enum lb_algorithm: how clients from outside the node
// pick a backend of a new flow.
type Algorithm uint8

const (
	AlgRandom Algorithm = 0
	AlgMaglev Algorithm = 1
)

func (a Algorithm) String() string {
	if a == AlgMaglev {
		return "maglev"
	}
	return "random"
}

// ServiceFlags mirror enum lb_svc_flags in bpf/lib/maps.h.
type ServiceFlags uint8

const (
	FlagClusterIP    ServiceFlags = 0
	FlagExternalIP   ServiceFlags = 1 << 0
	FlagNodePort     ServiceFlags = 1 << 1
	FlagLoadBalancer ServiceFlags = 1 << 2
	FlagAffinity     ServiceFlags = 1 << 3
	// FlagExtLocal sends clients from outside to the ScopeLocal entry.
	FlagExtLocal ServiceFlags = 1 << 4
	// FlagSourceRanges admits only clients in the SourceRanges.
	FlagSourceRanges ServiceFlags = 1 << 5
)

// BackendFlags mirror enum lb_backend_flags.
const backendLocal = 1 << 0

// Type names the kind of frontend the flags describe, as Cilium and
// Kubernetes spell it.
func (f ServiceFlags) Type() string {
	switch {
	case f&FlagLoadBalancer != 0:
		return "LoadBalancer"
	case f&FlagNodePort != 0:
		return "NodePort"
	case f&FlagExternalIP != 0:
		return "ExternalIP"
	}
	return "ClusterIP"
}

// BackendID names a backend in the backends maps. 0 is never allocated.
type BackendID uint32

// RevNatID names a reverse-NAT entry. 0 is never allocated.
type RevNatID uint32

// Frontend is the lookup key of a service: the address and port a client
// uses. IPv4 frontends live in the v4 maps, IPv6 ones in the v6 maps.
type Frontend struct {
	Addr  netip.Addr
	Port  uint16
	Proto L4Proto
	Scope Scope
}

func (f Frontend) String() string {
	return fmt.Sprintf("%s/%s", netip.AddrPortFrom(f.Addr, f.Port), f.Proto)
}

// Service is one frontend with its backends in slot order.
type Service struct {
	Frontend
	RevNat   RevNatID
	Flags    ServiceFlags
	Backends []BackendID
	// AffinityTimeout is sessionAffinity ClientIP's timeout in seconds;
	// 0 means no affinity.
	AffinityTimeout uint32
	// Algorithm picks backends for clients from outside; with AlgMaglev,
	// Maglev is the lookup table (backend ids, the table size long).
	Algorithm Algorithm
	Maglev    []BackendID
	// SourceRanges are loadBalancerSourceRanges (with FlagSourceRanges).
	SourceRanges []netip.Prefix
}

// Backend is where a service sends traffic.
type Backend struct {
	Addr  netip.AddrPort
	Proto L4Proto
	// Local is set when the endpoint runs on this node: clients from
	// outside reach it without SNAT.
	Local bool
}

func (b Backend) String() string { return fmt.Sprintf("%s/%s", b.Addr, b.Proto) }

// DumpedService is a service as found in the maps, which may be damaged:
// slot 0 missing (Incomplete) or slots beyond the count left behind.
type DumpedService struct {
	Service
	// Incomplete is set when backend slots exist without slot 0.
	Incomplete bool
	// MaxSlot is the highest backend slot present in the map.
	MaxSlot int

	count int // slot 0's backend count, while dumping
}

// AffinityMatch says a backend belongs to a service with session
// affinity, so affinities to it are honoured.
type AffinityMatch struct {
	Backend BackendID
	RevNat  RevNatID
}

// State is the full content of the LB maps.
type State struct {
	Services map[Frontend]*DumpedService
	Backends map[BackendID]Backend
	RevNats  map[RevNatID]netip.AddrPort
	Affinity map[AffinityMatch]bool
}

// NewState returns an empty State.
func NewState() *State {
	return &State{
		Services: map[Frontend]*DumpedService{},
		Backends: map[BackendID]Backend{},
		RevNats:  map[RevNatID]netip.AddrPort{},
		Affinity: map[AffinityMatch]bool{},
	}
}

// ServiceUpdate writes a service. PrevSlots is how many backend slots the
// maps may hold for this frontend now, so stale ones can be removed.
type ServiceUpdate struct {
	Service   Service
	PrevSlots int
}

// ServiceDelete removes a frontend and its backend slots 1..PrevSlots.
type ServiceDelete struct {
	Frontend  Frontend
	PrevSlots int
}

// BackendEntry is a backend with its id.
type BackendEntry struct {
	ID BackendID
	Backend
}

// RevNatEntry is a reverse-NAT entry: the frontend address a reply must
// appear to come from.
type RevNatEntry struct {
	ID   RevNatID
	Addr netip.AddrPort
}

// Changes is one batch of map writes. LBMap.Apply performs them in an
// order that keeps every service usable at every instant: new backends and
// reverse-NAT entries first, then backend slots, then slot 0, then
// deletions, then unused backends and reverse-NAT entries. Affinity
// matches are added with the backends and removed with the deletions.
type Changes struct {
	UpsertBackends []BackendEntry
	UpsertRevNats  []RevNatEntry
	UpsertAffinity []AffinityMatch
	UpsertServices []ServiceUpdate
	DeleteServices []ServiceDelete
	DeleteAffinity []AffinityMatch
	DeleteBackends []BackendID
	DeleteRevNats  []RevNatID
}

// Empty reports whether the batch writes nothing.
func (c *Changes) Empty() bool {
	return len(c.UpsertBackends) == 0 && len(c.UpsertRevNats) == 0 && len(c.UpsertServices) == 0 &&
		len(c.DeleteServices) == 0 && len(c.DeleteBackends) == 0 && len(c.DeleteRevNats) == 0 &&
		len(c.UpsertAffinity) == 0 && len(c.DeleteAffinity) == 0
}

// LBMap is the agent's view of the load-balancing maps.
type LBMap interface {
	// Apply writes a batch of changes. Deleting an entry that does not
	// exist is not an error. On error some changes may have been applied;
	// callers re-read the maps with Dump before the next attempt.
	Apply(*Changes) error
	// Dump reads every LB map. pause, when not nil, is called every few
	// thousand entries read or converted: a background reader spaces its
	// work out there (the read of 100k Services is a second of CPU).
	Dump(pause func()) (*State, error)
	// IDLimits bounds the ids: backend and reverse-NAT ids index arrays
	// and must be below these.
	IDLimits() (backends, revnats uint32)
}
