package plugin

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/hivelet/hivelet/test/testnet"
)

// A pod sends only from its own addresses. Pod a, given pod c's
// addresses (as a pod with NET_ADMIN, or a raw socket, could), sends to
// pod b as c: b must see nothing of it, while a's own datagrams arrive.
func TestPrivilegedPodsCannotSpoofSources(t *testing.T) {
	n := newNode(t, "10.244.0.0/24")
	a, b, c := testnet.NewNS(t, "poda"), testnet.NewNS(t, "podb"), testnet.NewNS(t, "podc")
	results := map[string]*testnet.NS{"ctr-a": a, "ctr-b": b, "ctr-c": c}
	ips := map[string][2]netip.Addr{}
	for id, ns := range results {
		r, err := n.add(id, ns)
		if err != nil {
			t.Fatal(err)
		}
		ips[id] = [2]netip.Addr{podIP(t, r, false), podIP(t, r, true)}
	}
	a.Must(t, func() error {
		eth0, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		for _, s := range ips["ctr-c"] {
			if err := netlink.AddrAdd(eth0, &netlink.Addr{IPNet: hostNet(s), Flags: 0x2 /* IFA_F_NODAD */}); err != nil {
				return fmt.Errorf("add %s: %w", s, err)
			}
		}
		return nil
	})
	for fam, v6 := range []bool{false, true} {
		network := map[bool]string{false: "udp4", true: "udp6"}[v6]
		var conn *net.UDPConn
		b.Must(t, func() error {
			var err error
			conn, err = net.ListenUDP(network, &net.UDPAddr{Port: 9090})
			return err
		})
		to := &net.UDPAddr{IP: ips["ctr-b"][fam].AsSlice(), Port: 9090}
		a.Must(t, func() error {
			for _, from := range []netip.Addr{ips["ctr-a"][fam], ips["ctr-c"][fam]} {
				s, err := net.DialUDP(network, &net.UDPAddr{IP: from.AsSlice()}, to)
				if err != nil {
					return fmt.Errorf("from %s: %w", from, err)
				}
				for range 5 {
					_, _ = s.Write([]byte(from.String()))
				}
				s.Close()
			}
			return nil
		})
		got := map[string]int{}
		buf := make([]byte, 64)
		for {
			_ = conn.SetReadDeadline(time.Now().Add(time.Second))
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				break
			}
			got[string(buf[:n])]++
		}
		conn.Close()
		if got[ips["ctr-a"][fam].String()] == 0 {
			t.Errorf("%s: pod a's own datagrams did not arrive: %v", network, got)
		}
		if n := got[ips["ctr-c"][fam].String()]; n != 0 {
			t.Errorf("%s: %d datagrams from pod a posing as pod c arrived", network, n)
		}
	}
}

func hostNet(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}
}
