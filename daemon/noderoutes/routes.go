// Package noderoutes gives pods on this node routes to the pods of every
// other node, from the Node objects' spec.podCIDRs and InternalIP
// addresses: "native routing", for nodes that share a link. Routes are
// desired state computed in Go and brought into the kernel by diff; the
// agent's routes carry a protocol number of their own, so the diff never
// touches a route it did not make.
package noderoutes

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Protocol marks hivelet's routes (`ip route show proto 98`); unused by
// the kernel and by common routing daemons.
const Protocol netlink.RouteProtocol = 98

// Node is what routing needs of a Node object.
type Node struct {
	Name     string
	PodCIDRs []netip.Prefix
	// InternalIPs of the node, one per family it has.
	InternalIPs []netip.Addr
}

// Route sends a remote node's pod CIDR to that node: straight to its
// address (native), or through a device (LinkIndex, on-link gateway: the
// VXLAN overlay).
type Route struct {
	Dst       netip.Prefix
	Via       netip.Addr
	LinkIndex int // 0: whichever link reaches Via
}

// same reports whether installed route have is what r asks for.
func (r Route) same(have Route) bool {
	return r.Via == have.Via && (r.LinkIndex == 0 || r.LinkIndex == have.LinkIndex)
}

// Desired is the route set for the node named self: every other node's pod
// CIDR via its InternalIP of the same family. A node without an address
// of a CIDR's family gets no route for it; a CIDR claimed by two nodes goes
// to the first by name (the API server does not allow that, but a stale
// cache might show it for a moment).
func Desired(self string, nodes []Node) []Route {
	nodes = slices.Clone(nodes)
	slices.SortFunc(nodes, func(a, b Node) int { return strings.Compare(a.Name, b.Name) })
	seen := map[netip.Prefix]bool{}
	var out []Route
	for _, n := range nodes {
		if n.Name == self {
			continue
		}
		for _, c := range n.PodCIDRs {
			c = c.Masked()
			if seen[c] {
				continue
			}
			for _, ip := range n.InternalIPs {
				if ip.Is4() == c.Addr().Is4() {
					out = append(out, Route{Dst: c, Via: ip})
					seen[c] = true
					break
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b Route) int { return strings.Compare(a.Dst.String(), b.Dst.String()) })
	return out
}

// Installed lists hivelet's routes in the main table of the current
// network namespace.
func Installed() ([]Route, error) {
	rs, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: Protocol, Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var out []Route
	for _, r := range rs {
		if r.Dst == nil || r.Gw == nil {
			continue
		}
		dst, ok1 := netip.AddrFromSlice(r.Dst.IP)
		via, ok2 := netip.AddrFromSlice(r.Gw)
		if !ok1 || !ok2 {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		out = append(out, Route{Dst: netip.PrefixFrom(dst.Unmap(), ones), Via: via.Unmap(), LinkIndex: r.LinkIndex})
	}
	return out, nil
}

// Stats says what a Sync changed.
type Stats struct{ Added, Removed, Unchanged int }

// Sync brings the kernel's hivelet routes to want: adds or replaces what
// differs, deletes what is no longer wanted. Routes of others are never
// touched; a route whose gateway is not reachable on a link fails with
// an error that says so, and the rest is still applied.
func Sync(want []Route) (Stats, error) {
	have, err := Installed()
	if err != nil {
		return Stats{}, err
	}
	var st Stats
	var errs []error
	wanted := map[netip.Prefix]bool{}
	for _, r := range want {
		wanted[r.Dst] = true
	}
	current := map[netip.Prefix]Route{}
	for _, r := range have {
		current[r.Dst] = r
	}
	for _, r := range want {
		if cur, ok := current[r.Dst]; ok && r.same(cur) {
			st.Unchanged++
			continue
		}
		if err := netlink.RouteReplace(kernelRoute(r)); err != nil {
			hint := ""
			if errors.Is(err, unix.ENETUNREACH) {
				hint = " (the node address is not on a directly connected network: native routing needs nodes on a shared link)"
			}
			errs = append(errs, fmt.Errorf("route %s via %s: %w%s", r.Dst, r.Via, err, hint))
			continue
		}
		st.Added++
	}
	for _, r := range have {
		if _, ok := wanted[r.Dst]; ok {
			continue
		}
		if err := netlink.RouteDel(kernelRoute(r)); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete route %s via %s: %w", r.Dst, r.Via, err))
			continue
		}
		st.Removed++
	}
	return st, errors.Join(errs...)
}

func kernelRoute(r Route) *netlink.Route {
	family := netlink.FAMILY_V4
	if r.Dst.Addr().Is6() {
		family = netlink.FAMILY_V6
	}
	kr := &netlink.Route{
		Dst:       &net.IPNet{IP: r.Dst.Addr().AsSlice(), Mask: net.CIDRMask(r.Dst.Bits(), r.Dst.Addr().BitLen())},
		Gw:        r.Via.AsSlice(),
		LinkIndex: r.LinkIndex,
		Protocol:  Protocol,
		Family:    family,
		Table:     unix.RT_TABLE_MAIN,
	}
	if r.LinkIndex != 0 {
		kr.Flags = int(netlink.FLAG_ONLINK)
	}
	return kr
}
