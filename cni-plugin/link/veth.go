// Package link wires a pod to its node: one veth pair per attachment, the
// pod end holding the pod's addresses, the host end a plain routed port.
//
// Routing is point to point, as Cilium and Calico do it, not a bridge: the
// pod's default route points at a link-local gateway (169.254.1.1 and
// fe80::1) that is pinned in the pod's neighbour table to the host end's
// MAC, and the node routes each pod address to its host end (/32, /128).
// So every packet a pod sends reaches the host end, where the per-pod TC
// program and the node's routing see it; there is no L2 domain shared
// between pods (no ARP or NDP spoofing of neighbours, no bridge FDB,
// no broadcast storms), and no gateway address is spent per node. Both
// neighbour tables are filled statically, so the first packet never waits
// for ARP or NDP.
package link

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/hivelet/hivelet/cni-plugin/config"
)

// Gateways the pod routes through. They exist only as static neighbour
// entries in the pod, resolving to the host end.
var (
	GatewayV4 = net.IPv4(169, 254, 1, 1).To4()
	GatewayV6 = net.ParseIP("fe80::1")
)

// HostPrefix starts every host-end name, so the node's tools (and GC) can
// tell hivelet's pod ports from other links.
const HostPrefix = "hl"

// Names derives the host end's name (15 bytes at most, as the kernel
// wants) and both MACs from the attachment. The same attachment always
// gets the same names, so DEL finds the link again with nothing stored.
func Names(containerID, ifname string) (host string, hostMAC, podMAC net.HardwareAddr) {
	sum := sha256.Sum256([]byte(containerID + "/" + ifname))
	host = HostPrefix + hex.EncodeToString(sum[:])[:11]
	// Locally administered unicast addresses.
	hostMAC = net.HardwareAddr{0x02, sum[8], sum[9], sum[10], sum[11], sum[12]}
	podMAC = net.HardwareAddr{0x06, sum[13], sum[14], sum[15], sum[16], sum[17]}
	return host, hostMAC, podMAC
}

// Attachment is a wired pod interface.
type Attachment struct {
	Host, Pod       string
	HostMAC, PodMAC net.HardwareAddr
	HostIndex       int
}

// Setup creates the veth pair for (containerID, ifname) with the pod end
// in podNS, gives it ips and routes, and fills both neighbour tables. The
// caller's network namespace is the node's. On error nothing is left
// behind.
func Setup(podNS netns.NsHandle, containerID, ifname string, mtu int, ips []*current.IPConfig) (_ *Attachment, err error) {
	host, hostMAC, podMAC := Names(containerID, ifname)
	a := &Attachment{Host: host, Pod: ifname, HostMAC: hostMAC, PodMAC: podMAC}
	pod, err := netlink.NewHandleAt(podNS)
	if err != nil {
		return nil, types.NewError(types.ErrIOFailure, "open pod network namespace: "+err.Error(), "")
	}
	defer pod.Close()
	if _, err := pod.LinkByName(ifname); err == nil {
		return nil, types.NewError(config.ErrNameClash, fmt.Sprintf("interface %s already exists in the pod's network namespace", ifname),
			"pick another CNI_IFNAME, or DEL the attachment that created it")
	}
	if _, err := netlink.LinkByName(host); err == nil {
		return nil, types.NewError(config.ErrNameClash, fmt.Sprintf("host interface %s for container %.12s/%s already exists", host, containerID, ifname),
			"an earlier ADD of this attachment was not deleted: DEL it first (or `ip link del "+host+"`)")
	}

	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: host, MTU: mtu, HardwareAddr: hostMAC},
		PeerName:         ifname,
		PeerMTU:          uint32(mtu),
		PeerHardwareAddr: podMAC,
		PeerNamespace:    netlink.NsFd(int(podNS)),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return nil, types.NewError(types.ErrIOFailure, fmt.Sprintf("create veth %s/%s: %v", host, ifname, err), "")
	}
	defer func() {
		if err != nil {
			_ = Teardown(containerID, ifname) // the pod end goes with it
		}
	}()
	hostLink, err := netlink.LinkByName(host)
	if err != nil {
		return nil, fmt.Errorf("find host end %s: %w", host, err)
	}
	a.HostIndex = hostLink.Attrs().Index
	podLink, err := pod.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("find pod end %s: %w", ifname, err)
	}
	if err := configurePod(pod, podLink, hostMAC, ips); err != nil {
		return nil, types.NewError(types.ErrIOFailure, "configure pod interface: "+err.Error(), "")
	}
	if err := configureHost(hostLink, podMAC, ips); err != nil {
		return nil, types.NewError(types.ErrIOFailure, "configure host interface: "+err.Error(), "")
	}
	return a, nil
}

func configurePod(h *netlink.Handle, l netlink.Link, hostMAC net.HardwareAddr, ips []*current.IPConfig) error {
	if lo, err := h.LinkByName("lo"); err == nil {
		if err := h.LinkSetUp(lo); err != nil {
			return fmt.Errorf("set lo up: %w", err)
		}
	}
	idx := l.Attrs().Index
	for _, ip := range ips {
		addr := &netlink.Addr{IPNet: hostRoute(ip.Address.IP)}
		if ip.Address.IP.To4() == nil {
			// The address is unique by allocation: no duplicate
			// address detection delaying the pod's first packet.
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(l, addr); err != nil {
			return fmt.Errorf("add address %s: %w", addr.IPNet, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", l.Attrs().Name, err)
	}
	for _, ip := range ips {
		gw, fam := GatewayV4, netlink.FAMILY_V4
		if ip.Address.IP.To4() == nil {
			gw, fam = GatewayV6, netlink.FAMILY_V6
		}
		n := &netlink.Neigh{LinkIndex: idx, Family: fam, State: netlink.NUD_PERMANENT, IP: gw, HardwareAddr: hostMAC}
		if err := h.NeighSet(n); err != nil {
			return fmt.Errorf("pin gateway %s: %w", gw, err)
		}
		r := &netlink.Route{LinkIndex: idx, Gw: gw, Flags: int(netlink.FLAG_ONLINK), Family: fam}
		if err := h.RouteReplace(r); err != nil {
			return fmt.Errorf("add default route via %s: %w", gw, err)
		}
	}
	return nil
}

func configureHost(l netlink.Link, podMAC net.HardwareAddr, ips []*current.IPConfig) error {
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", l.Attrs().Name, err)
	}
	idx := l.Attrs().Index
	for _, ip := range ips {
		fam := netlink.FAMILY_V4
		if ip.Address.IP.To4() == nil {
			fam = netlink.FAMILY_V6
		}
		n := &netlink.Neigh{LinkIndex: idx, Family: fam, State: netlink.NUD_PERMANENT, IP: ip.Address.IP, HardwareAddr: podMAC}
		if err := netlink.NeighSet(n); err != nil {
			return fmt.Errorf("pin pod neighbour %s: %w", ip.Address.IP, err)
		}
		r := &netlink.Route{LinkIndex: idx, Dst: hostRoute(ip.Address.IP), Scope: netlink.SCOPE_LINK, Family: fam}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("route %s to %s: %w", ip.Address.IP, l.Attrs().Name, err)
		}
	}
	return nil
}

// hostRoute is the single-address prefix of ip.
func hostRoute(ip net.IP) *net.IPNet {
	if v4 := ip.To4(); v4 != nil {
		return &net.IPNet{IP: v4, Mask: net.CIDRMask(32, 32)}
	}
	return &net.IPNet{IP: ip, Mask: net.CIDRMask(128, 128)}
}

// Teardown deletes the attachment's veth pair (the pod end and the host
// routes go with it). A pair already gone is fine: DEL repeats.
func Teardown(containerID, ifname string) error {
	host, _, _ := Names(containerID, ifname)
	l, err := netlink.LinkByName(host)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return types.NewError(types.ErrIOFailure, fmt.Sprintf("find %s: %v", host, err), "")
	}
	if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return types.NewError(types.ErrIOFailure, fmt.Sprintf("delete %s: %v", host, err), "")
	}
	return nil
}

// EnableForwarding turns on routing in the node's namespace for the
// families pods use; pods are only reachable through it.
func EnableForwarding(v4, v6 bool) error {
	var keys []string
	if v4 {
		keys = append(keys, "/proc/sys/net/ipv4/ip_forward")
	}
	if v6 {
		keys = append(keys, "/proc/sys/net/ipv6/conf/all/forwarding")
	}
	for _, k := range keys {
		if b, err := os.ReadFile(k); err == nil && len(b) > 0 && b[0] == '1' {
			continue
		}
		if err := os.WriteFile(k, []byte("1"), 0o644); err != nil {
			return types.NewError(types.ErrIOFailure, fmt.Sprintf("enable forwarding (%s): %v", k, err), "")
		}
	}
	return nil
}
