package install

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
)

// VXLANOverhead is what a VXLAN overlay adds to each packet (outer
// Ethernet, IP, UDP and VXLAN headers over IPv4).
const VXLANOverhead = 50

// DetectMTU is the pod MTU a node's underlay allows: the MTU of the
// device carrying the default route (IPv4 first, then IPv6), less the
// overlay's overhead when pods' traffic to other nodes is encapsulated.
func DetectMTU(overlay bool) (int, error) {
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := netlink.RouteList(nil, family)
		if err != nil {
			return 0, fmt.Errorf("detect MTU: list routes: %w", err)
		}
		for _, r := range routes {
			if r.Dst != nil && r.Dst.IP != nil && !r.Dst.IP.IsUnspecified() || r.LinkIndex <= 0 {
				continue
			}
			l, err := netlink.LinkByIndex(r.LinkIndex)
			if err != nil {
				continue
			}
			mtu := l.Attrs().MTU
			if overlay {
				mtu -= VXLANOverhead
			}
			return mtu, nil
		}
	}
	return 0, errors.New("detect MTU: no default route (pass --mtu)")
}
