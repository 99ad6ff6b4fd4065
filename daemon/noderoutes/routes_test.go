package noderoutes

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/hivelet/hivelet/test/testnet"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

func TestDesired(t *testing.T) {
	nodes := []Node{
		{Name: "self", PodCIDRs: []netip.Prefix{pfx("10.244.0.0/24")}, InternalIPs: []netip.Addr{addr("192.168.50.1")}},
		{Name: "b", PodCIDRs: []netip.Prefix{pfx("10.244.2.0/24"), pfx("fd00:10:244:2::/64")},
			InternalIPs: []netip.Addr{addr("192.168.50.3"), addr("fd00:50::3")}},
		{Name: "a", PodCIDRs: []netip.Prefix{pfx("10.244.1.7/24")}, InternalIPs: []netip.Addr{addr("fd00:50::2"), addr("192.168.50.2")}},
		{Name: "v4only", PodCIDRs: []netip.Prefix{pfx("fd00:10:244:4::/64")}, InternalIPs: []netip.Addr{addr("192.168.50.4")}},
		{Name: "nocidr", InternalIPs: []netip.Addr{addr("192.168.50.5")}},
		{Name: "z-dup", PodCIDRs: []netip.Prefix{pfx("10.244.2.0/24")}, InternalIPs: []netip.Addr{addr("192.168.50.9")}},
	}
	want := []Route{
		{Dst: pfx("10.244.1.0/24"), Via: addr("192.168.50.2")}, // masked; the family's address
		{Dst: pfx("10.244.2.0/24"), Via: addr("192.168.50.3")}, // b before z-dup
		{Dst: pfx("fd00:10:244:2::/64"), Via: addr("fd00:50::3")},
	}
	if got := Desired("self", nodes); !slices.Equal(got, want) {
		t.Fatalf("Desired:\n got %v\nwant %v", got, want)
	}
}

// Sync in a namespace standing in for a node on a shared link.
func TestPrivilegedSync(t *testing.T) {
	testnet.RequireRoot(t)
	ns := testnet.NewNS(t, "rtnode")
	ns.IP(t, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
	ns.IP(t, "addr", "add", "192.168.50.1/24", "dev", "eth0")
	ns.IP(t, "addr", "add", "fd00:50::1/64", "dev", "eth0", "nodad")
	ns.IP(t, "link", "set", "eth0", "up")
	ns.IP(t, "link", "set", "peer0", "up")
	// Someone else's route: never touched.
	ns.IP(t, "route", "add", "10.9.0.0/16", "via", "192.168.50.254", "proto", "static")

	sync := func(want []Route) (Stats, error) {
		var st Stats
		err := ns.Do(func() (err error) { st, err = Sync(want); return err })
		return st, err
	}
	want := []Route{
		{Dst: pfx("10.244.1.0/24"), Via: addr("192.168.50.2")},
		{Dst: pfx("fd00:10:244:1::/64"), Via: addr("fd00:50::2")},
	}
	if st, err := sync(want); err != nil || st.Added != 2 {
		t.Fatalf("first sync: %+v, %v", st, err)
	}
	if st, err := sync(want); err != nil || st.Added != 0 || st.Unchanged != 2 {
		t.Fatalf("second sync is not a no-op: %+v, %v", st, err)
	}
	out := ns.IP(t, "route", "show", "proto", "98") + ns.IP(t, "-6", "route", "show", "proto", "98")
	for _, r := range []string{"10.244.1.0/24 via 192.168.50.2", "fd00:10:244:1::/64 via fd00:50::2"} {
		if !strings.Contains(out, r) {
			t.Errorf("route %q missing:\n%s", r, out)
		}
	}
	// The node moves, another leaves, one is out of reach.
	want = []Route{
		{Dst: pfx("10.244.1.0/24"), Via: addr("192.168.50.7")},
		{Dst: pfx("10.244.3.0/24"), Via: addr("10.1.1.1")},
	}
	st, err := sync(want)
	if err == nil || !strings.Contains(err.Error(), "10.244.3.0/24") || !strings.Contains(err.Error(), "shared link") {
		t.Errorf("unreachable gateway: %v", err)
	}
	if st.Added != 1 || st.Removed != 1 {
		t.Errorf("stats: %+v", st)
	}
	out = ns.IP(t, "route") + ns.IP(t, "-6", "route")
	if !strings.Contains(out, "10.244.1.0/24 via 192.168.50.7") || strings.Contains(out, "fd00:10:244:1::") || !strings.Contains(out, "10.9.0.0/16 via 192.168.50.254") {
		t.Errorf("routes after the change:\n%s", out)
	}
	if _, err := sync(nil); err != nil {
		t.Fatal(err)
	}
	if out := ns.IP(t, "route", "show", "proto", "98"); strings.TrimSpace(out) != "" {
		t.Errorf("hivelet routes left after syncing to none:\n%s", out)
	}
}

func TestPrivilegedSyncVXLAN(t *testing.T) {
	testnet.RequireRoot(t)
	ns := testnet.NewNS(t, "vxnode")
	ns.IP(t, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
	ns.IP(t, "addr", "add", "192.168.60.1/24", "dev", "eth0")
	ns.IP(t, "link", "set", "eth0", "up")
	nodes := []Node{
		{Name: "self", PodCIDRs: []netip.Prefix{pfx("10.244.0.0/24")}, InternalIPs: []netip.Addr{addr("192.168.60.1")}},
		{Name: "b", PodCIDRs: []netip.Prefix{pfx("10.244.2.0/24"), pfx("fd00:10:244:2::/64")}, InternalIPs: []netip.Addr{addr("192.168.60.2")}},
		{Name: "c", PodCIDRs: []netip.Prefix{pfx("10.244.3.0/24")}, InternalIPs: []netip.Addr{addr("10.20.0.3")}},
	}
	sync := func(nodes []Node) Stats {
		var st Stats
		ns.Must(t, func() error {
			local, mtu, err := Underlay("self", nodes)
			if err != nil {
				return err
			}
			if local != addr("192.168.60.1") || mtu != 1450 {
				t.Errorf("underlay %s, MTU %d", local, mtu)
			}
			st, err = SyncVXLAN(local, mtu, DesiredTunnels("self", nodes, false))
			return err
		})
		return st
	}
	if st := sync(nodes); st.Added != 3 {
		t.Fatalf("first sync: %+v", st)
	}
	if st := sync(nodes); st.Added != 0 || st.Unchanged != 3 {
		t.Fatalf("second sync is not a no-op: %+v", st)
	}
	dev := ns.IP(t, "-d", "link", "show", VXLANDevice)
	if !strings.Contains(dev, "vxlan id 1") || !strings.Contains(dev, "dstport 8472") || !strings.Contains(dev, "mtu 1450") {
		t.Errorf("device:\n%s", dev)
	}
	fdb := testnet.Run(t, "ip", "-n", ns.Name, "neigh", "show", "dev", VXLANDevice) + testnet.Run(t, "bridge", "-n", ns.Name, "fdb", "show", "dev", VXLANDevice)
	if !strings.Contains(fdb, "dst 10.20.0.3") || !strings.Contains(fdb, "10.244.3.0 lladdr "+VTEPMAC(addr("10.20.0.3")).String()) {
		t.Errorf("neighbours and fdb:\n%s", fdb)
	}
	// c leaves: its route, neighbour and forwarding entry go.
	if st := sync(nodes[:2]); st.Removed != 1 {
		t.Fatalf("sync after c left: %+v", st)
	}
	fdb = testnet.Run(t, "ip", "-n", ns.Name, "neigh", "show", "dev", VXLANDevice) + testnet.Run(t, "bridge", "-n", ns.Name, "fdb", "show", "dev", VXLANDevice)
	if strings.Contains(fdb, "10.20.0.3") || strings.Contains(fdb, "10.244.3.0") || !strings.Contains(fdb, "dst 192.168.60.2") {
		t.Errorf("entries after c left:\n%s", fdb)
	}
}
