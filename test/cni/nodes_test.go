package cni

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/hivelet/hivelet/daemon/noderoutes"
	"github.com/hivelet/hivelet/test/testnet"
)

// Two nodes on a link, each with its pod CIDRs and a pod wired by
// hivelet-cni: with the routes the agent derives from the Node objects,
// native or through the VXLAN overlay, the pods reach each other over
// IPv4 and IPv6.
func TestPrivilegedPodsAcrossNodes(t *testing.T) {
	for _, mode := range []string{"native", "vxlan"} {
		t.Run(mode, func(t *testing.T) { podsAcrossNodes(t, mode) })
	}
}

func podsAcrossNodes(t *testing.T, mode string) {
	// Pods leave room for the overlay's 50 bytes.
	n1 := newNodeSetup(t, "10.244.1.0/24,fd00:10:244:1::/64", "--standalone", "--mtu", "1450")
	n2 := newNodeSetup(t, "10.244.2.0/24,fd00:10:244:2::/64", "--standalone", "--mtu", "1450")
	// The shared link.
	n1.node.IP(t, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", n2.node.Name)
	nodes := []noderoutes.Node{
		{Name: "node-1", PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24"), netip.MustParsePrefix("fd00:10:244:1::/64")},
			InternalIPs: []netip.Addr{netip.MustParseAddr("192.168.50.1"), netip.MustParseAddr("fd00:50::1")}},
		{Name: "node-2", PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.2.0/24"), netip.MustParsePrefix("fd00:10:244:2::/64")},
			InternalIPs: []netip.Addr{netip.MustParseAddr("192.168.50.2"), netip.MustParseAddr("fd00:50::2")}},
	}
	var pods []*current.Result
	var podNS []*testnet.NS
	for i, s := range []*setup{n1, n2} {
		for _, a := range nodes[i].InternalIPs {
			bits := 24
			extra := []string{}
			if a.Is6() {
				bits, extra = 64, []string{"nodad"}
			}
			s.node.IP(t, append([]string{"addr", "add", fmt.Sprintf("%s/%d", a, bits), "dev", "eth0"}, extra...)...)
		}
		s.node.IP(t, "link", "set", "eth0", "up")
		self := nodes[i].Name
		s.node.Must(t, func() error {
			if mode == "vxlan" {
				local, mtu, err := noderoutes.Underlay(self, nodes)
				if err != nil {
					return err
				}
				_, err = noderoutes.SyncVXLAN(local, mtu, noderoutes.DesiredTunnels(self, nodes, false))
				return err
			}
			_, err := noderoutes.Sync(noderoutes.Desired(self, nodes))
			return err
		})
		pod := testnet.NewNS(t, "pod")
		var res *current.Result
		s.node.Must(t, func() error {
			r, err := s.cni.AddNetworkList(context.Background(), s.list, &libcni.RuntimeConf{ContainerID: self + "-pod", NetNS: pod.Path(), IfName: "eth0"})
			if err == nil {
				res, err = current.NewResultFromResult(r)
			}
			return err
		})
		pods, podNS = append(pods, res), append(podNS, pod)
	}
	server := &testnet.Pod{Name: "pod-on-node-2", NS: podNS[1]}
	server.Serve(t, 8080)
	for _, ip := range pods[1].IPs {
		a, _ := netip.AddrFromSlice(ip.Address.IP)
		to := netip.AddrPortFrom(a.Unmap(), 8080)
		err := podNS[0].Do(func() error {
			r, err := testnet.Dial("tcp", to)
			if err == nil && r.Name != server.Name {
				err = fmt.Errorf("answer from %q", r.Name)
			}
			return err
		})
		if err != nil {
			t.Fatalf("pod on node-1 to %s: %v\nnode-1 routes:\n%s", to, err, n1.node.IP(t, "route")+n1.node.IP(t, "-6", "route"))
		}
	}
	want := map[string]string{"native": "10.244.2.0/24 via 192.168.50.2 dev eth0", "vxlan": "10.244.2.0/24 via 10.244.2.0 dev hivelet.vxlan"}[mode]
	if out := n1.node.IP(t, "route", "show", "proto", "98"); !strings.Contains(out, want) {
		t.Errorf("node-1's hivelet routes lack %q:\n%s", want, out)
	}
}
