package link

import (
	"bytes"
	"fmt"
	"net"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Check verifies that the attachment is still wired as Setup left it:
// both ends up, the pod end with want's addresses and a default route
// through the gateway of each family.
func Check(podNS netns.NsHandle, containerID, ifname string, want []net.IP) error {
	host, hostMAC, podMAC := Names(containerID, ifname)
	hl, err := netlink.LinkByName(host)
	if err != nil {
		return fmt.Errorf("host end %s: %w", host, err)
	}
	if hl.Attrs().Flags&net.FlagUp == 0 {
		return fmt.Errorf("host end %s is down", host)
	}
	pod, err := netlink.NewHandleAt(podNS)
	if err != nil {
		return fmt.Errorf("open pod network namespace: %w", err)
	}
	defer pod.Close()
	pl, err := pod.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("pod end %s: %w", ifname, err)
	}
	switch {
	case pl.Attrs().Flags&net.FlagUp == 0:
		return fmt.Errorf("pod end %s is down", ifname)
	case !bytes.Equal(pl.Attrs().HardwareAddr, podMAC) || !bytes.Equal(hl.Attrs().HardwareAddr, hostMAC):
		return fmt.Errorf("veth %s/%s has other MACs than this attachment's: replaced by someone else", host, ifname)
	}
	addrs, err := pod.AddrList(pl, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list pod addresses: %w", err)
	}
	routes, err := pod.RouteList(pl, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list pod routes: %w", err)
	}
	for _, ip := range want {
		if !hasAddr(addrs, ip) {
			return fmt.Errorf("pod end %s lacks address %s", ifname, ip)
		}
		gw := GatewayV4
		if ip.To4() == nil {
			gw = GatewayV6
		}
		if !hasDefaultVia(routes, gw) {
			return fmt.Errorf("pod has no default route via %s on %s", gw, ifname)
		}
	}
	return nil
}

func hasAddr(addrs []netlink.Addr, ip net.IP) bool {
	for _, a := range addrs {
		if a.IP.Equal(ip) {
			return true
		}
	}
	return false
}

func hasDefaultVia(routes []netlink.Route, gw net.IP) bool {
	for _, r := range routes {
		if (r.Dst == nil || strings.HasSuffix(r.Dst.String(), "/0")) && r.Gw.Equal(gw) {
			return true
		}
	}
	return false
}

// Orphans lists host ends named like hivelet's that belong to none of the
// attachments in keep (containerID/ifname pairs).
func Orphans(keep [][2]string) ([]string, error) {
	valid := map[string]bool{}
	for _, k := range keep {
		host, _, _ := Names(k[0], k[1])
		valid[host] = true
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []string
	for _, l := range links {
		name := l.Attrs().Name
		if _, ok := l.(*netlink.Veth); ok && strings.HasPrefix(name, HostPrefix) && len(name) == len(HostPrefix)+11 && !valid[name] {
			out = append(out, name)
		}
	}
	return out, nil
}

// Delete removes a host end by name; gone already is fine.
func Delete(host string) error {
	l, err := netlink.LinkByName(host)
	if err != nil {
		return nil
	}
	return netlink.LinkDel(l)
}
