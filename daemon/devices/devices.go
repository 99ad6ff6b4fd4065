// Package devices finds the node's devices where traffic from outside
// arrives (NodePorts, external IPs, load-balancer IPs) and the addresses
// flows to other nodes' backends are SNATed to.
package devices

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
)

// Auto selects the devices carrying the default routes and the
// node's addresses.
const Auto = "auto"

// Resolve turns --devices into device names: "auto", "" / "none"
// (no TC datapath), or a comma-separated list.
func Resolve(spec string, nodeIPs []netip.Addr) ([]string, error) {
	switch spec {
	case "", "none":
		return nil, nil
	case Auto:
		return Detect(nodeIPs)
	}
	var out []string
	for _, d := range strings.Split(spec, ",") {
		if d = strings.TrimSpace(d); d != "" {
			if _, err := netlink.LinkByName(d); err != nil {
				return nil, fmt.Errorf("--devices %s: %w (list devices with `ip link`)", d, err)
			}
			out = append(out, d)
		}
	}
	return out, nil
}

// Detect finds the devices of the default routes and of the node
// addresses: where traffic from outside the node arrives.
func Detect(nodeIPs []netip.Addr) ([]string, error) {
	idx := map[int]bool{}
	routes, err := netlink.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("detect devices: list routes: %w", err)
	}
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.IP.IsUnspecified() && isZeroMask(r.Dst.Mask)) && r.LinkIndex > 0 {
			idx[r.LinkIndex] = true
		}
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("detect devices: list addresses: %w", err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && slices.Contains(nodeIPs, ip.Unmap()) {
			idx[a.LinkIndex] = true
		}
	}
	var out []string
	for i := range idx {
		l, err := netlink.LinkByIndex(i)
		if err != nil {
			continue
		}
		name := l.Attrs().Name
		// netlink reports Go's net.Flags, not the kernel's IFF_ bits (where
		// loopback is 1<<3; here that bit is point-to-point, which a
		// tunnel or PPP uplink carrying the default route has).
		if l.Attrs().Flags&net.FlagLoopback != 0 || strings.HasPrefix(name, "hl") {
			continue // loopback and pod veths are not external devices
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out, nil
}

func isZeroMask(m []byte) bool {
	for _, b := range m {
		if b != 0 {
			return false
		}
	}
	return true
}

// SNATAddrs picks the node addresses flows to remote backends are SNATed
// to: the first node IP of each family, else the first global address of
// the devices.
func SNATAddrs(nodeIPs []netip.Addr, devices []string) (v4, v6 netip.Addr) {
	pick := func(a netip.Addr) {
		a = a.Unmap()
		if a.Is4() && !v4.IsValid() {
			v4 = a
		}
		if a.Is6() && !v6.IsValid() && !a.IsLinkLocalUnicast() {
			v6 = a
		}
	}
	for _, a := range nodeIPs {
		pick(a)
	}
	for _, d := range devices {
		l, err := netlink.LinkByName(d)
		if err != nil {
			continue
		}
		addrs, _ := netlink.AddrList(l, netlink.FAMILY_ALL)
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.IsGlobalUnicast() {
				pick(ip)
			}
		}
	}
	return v4, v6
}
