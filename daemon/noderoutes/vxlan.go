package noderoutes

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The overlay, for nodes that do not share a link: pod traffic to another
// node is routed into one VXLAN device and carried in UDP to that node's
// InternalIP, as flannel's vxlan backend does. Nothing is stored in the
// Node objects: each node's tunnel MAC derives from its address, so every
// node computes every other node's entries from what the API already has.
const (
	VXLANDevice = "hivelet.vxlan"
	VXLANPort   = 8472 // the Linux-kernel-wide default of flannel and Cilium
	VXLANID     = 1
	// VXLANOverhead is what encapsulation adds to a packet on an IPv4
	// underlay: pod MTUs must leave room for it.
	VXLANOverhead = 50
)

// VTEPMAC is the tunnel MAC of the node with underlay address ip.
func VTEPMAC(ip netip.Addr) net.HardwareAddr {
	sum := sha256.Sum256(ip.AsSlice())
	return net.HardwareAddr{0x02, 0x68, sum[0], sum[1], sum[2], sum[3]} // locally administered
}

// Tunnel is how one remote pod CIDR is reached through the overlay: via
// its network address as an on-link gateway (resolved statically to the
// node's VTEP MAC), whose frames the device sends to the node's address.
type Tunnel struct {
	Dst      netip.Prefix
	Gateway  netip.Addr // Dst's network address
	MAC      net.HardwareAddr
	Underlay netip.Addr // the node's InternalIP
}

// DesiredTunnels is the overlay counterpart of Desired: an entry per other
// node's pod CIDR, over the node's InternalIP of the underlay family.
func DesiredTunnels(self string, nodes []Node, underlay6 bool) []Tunnel {
	var out []Tunnel
	for _, n := range nodes {
		if n.Name == self {
			continue
		}
		var under netip.Addr
		for _, ip := range n.InternalIPs {
			if ip.Is6() == underlay6 {
				under = ip
				break
			}
		}
		if !under.IsValid() {
			continue
		}
		for _, c := range n.PodCIDRs {
			c = c.Masked()
			out = append(out, Tunnel{Dst: c, Gateway: c.Addr(), MAC: VTEPMAC(under), Underlay: under})
		}
	}
	return out
}

// SyncVXLAN brings the overlay to want: the device (local address, MTU),
// its forwarding and neighbour entries, and the routes into it. Entries
// and routes no longer wanted go.
func SyncVXLAN(local netip.Addr, mtu int, want []Tunnel) (Stats, error) {
	dev, err := ensureVXLAN(local, mtu)
	if err != nil {
		return Stats{}, err
	}
	idx := dev.Attrs().Index
	var errs []error
	fdb := map[string]bool{}
	neigh := map[netip.Addr]bool{}
	var routes []Route
	for _, t := range want {
		f := &netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF, State: netlink.NUD_PERMANENT,
			HardwareAddr: t.MAC, IP: t.Underlay.AsSlice()}
		if err := netlink.NeighSet(f); err != nil {
			errs = append(errs, fmt.Errorf("forwarding entry %s -> %s: %w", t.MAC, t.Underlay, err))
			continue
		}
		fdb[t.MAC.String()] = true
		family := netlink.FAMILY_V4
		if t.Gateway.Is6() {
			family = netlink.FAMILY_V6
		}
		n := &netlink.Neigh{LinkIndex: idx, Family: family, State: netlink.NUD_PERMANENT, IP: t.Gateway.AsSlice(), HardwareAddr: t.MAC}
		if err := netlink.NeighSet(n); err != nil {
			errs = append(errs, fmt.Errorf("neighbour %s -> %s: %w", t.Gateway, t.MAC, err))
			continue
		}
		neigh[t.Gateway] = true
		routes = append(routes, Route{Dst: t.Dst, Via: t.Gateway, LinkIndex: idx})
	}
	st, err := Sync(routes)
	errs = append(errs, err)
	errs = append(errs, pruneNeighbours(idx, fdb, neigh))
	return st, errors.Join(errs...)
}

func ensureVXLAN(local netip.Addr, mtu int) (netlink.Link, error) {
	want := &netlink.Vxlan{
		LinkAttrs: netlink.LinkAttrs{Name: VXLANDevice, MTU: mtu, HardwareAddr: VTEPMAC(local)},
		VxlanId:   VXLANID, SrcAddr: local.AsSlice(), Port: VXLANPort, Learning: false,
	}
	l, err := netlink.LinkByName(VXLANDevice)
	if err == nil {
		vx, ok := l.(*netlink.Vxlan)
		if !ok || vx.VxlanId != VXLANID || vx.Port != VXLANPort || !vx.SrcAddr.Equal(want.SrcAddr) {
			// The node's address changed (or the name is taken by
			// something else of ours): rebuild it.
			if err := netlink.LinkDel(l); err != nil {
				return nil, fmt.Errorf("replace %s: %w", VXLANDevice, err)
			}
			l = nil
		}
	}
	if l == nil || err != nil {
		if err := netlink.LinkAdd(want); err != nil {
			return nil, fmt.Errorf("create %s: %w", VXLANDevice, err)
		}
		if l, err = netlink.LinkByName(VXLANDevice); err != nil {
			return nil, err
		}
	}
	if l.Attrs().MTU != mtu {
		if err := netlink.LinkSetMTU(l, mtu); err != nil {
			return nil, fmt.Errorf("set %s MTU %d: %w", VXLANDevice, mtu, err)
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return nil, fmt.Errorf("set %s up: %w", VXLANDevice, err)
	}
	return l, nil
}

// pruneNeighbours deletes the device's permanent entries not wanted.
func pruneNeighbours(idx int, fdb map[string]bool, neigh map[netip.Addr]bool) error {
	var errs []error
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6, unix.AF_BRIDGE} {
		ns, err := netlink.NeighList(idx, fam)
		if err != nil {
			errs = append(errs, fmt.Errorf("list neighbours: %w", err))
			continue
		}
		for _, n := range ns {
			if n.State&netlink.NUD_PERMANENT == 0 {
				continue
			}
			if fam == unix.AF_BRIDGE {
				if n.IP == nil || fdb[n.HardwareAddr.String()] {
					continue
				}
			} else if ip, ok := netip.AddrFromSlice(n.IP); !ok || neigh[ip.Unmap()] {
				continue
			}
			if err := netlink.NeighDel(&n); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("delete neighbour %v: %w", n, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Underlay finds this node's address among its InternalIPs (IPv4 first)
// and the MTU the overlay device can have on the link that holds it.
func Underlay(self string, nodes []Node) (netip.Addr, int, error) {
	var ips []netip.Addr
	for _, n := range nodes {
		if n.Name == self {
			ips = n.InternalIPs
		}
	}
	if len(ips) == 0 {
		return netip.Addr{}, 0, fmt.Errorf("node %s has no Node object with an InternalIP yet (is --hostname-override right?)", self)
	}
	ips = slices.Clone(ips)
	slices.SortStableFunc(ips, func(a, b netip.Addr) int { return boolRank(a.Is4()) - boolRank(b.Is4()) })
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("list addresses: %w", err)
	}
	for _, ip := range ips {
		for _, a := range addrs {
			if have, ok := netip.AddrFromSlice(a.IP); ok && have.Unmap() == ip {
				l, err := netlink.LinkByIndex(a.LinkIndex)
				if err != nil {
					return netip.Addr{}, 0, err
				}
				return ip, l.Attrs().MTU - VXLANOverhead, nil
			}
		}
	}
	return netip.Addr{}, 0, fmt.Errorf("none of node %s's InternalIPs %v is on this machine", self, ips)
}

// boolRank orders true first.
func boolRank(b bool) int {
	if b {
		return 0
	}
	return 1
}
