package devices

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/hivelet/hivelet/test/testnet"
)

// Device detection takes the devices of the default routes and of the
// node addresses, loopback excepted: a node address on lo (as test and
// DSR nodes have) must not make lo a NodePort device, and a
// point-to-point uplink (a tun carrying the default route) must not be
// taken for loopback.
func TestPrivilegedDetectDevices(t *testing.T) {
	testnet.RequireRoot(t)
	ns := testnet.NewNS(t, "dev")
	ns.IP(t, "addr", "add", "192.0.2.10/32", "dev", "lo")
	ns.IP(t, "link", "set", "lo", "up")
	ns.IP(t, "tuntap", "add", "dev", "uplink0", "mode", "tun")
	ns.IP(t, "addr", "add", "198.51.100.2/24", "dev", "uplink0")
	ns.IP(t, "link", "set", "uplink0", "up")
	ns.IP(t, "route", "add", "default", "dev", "uplink0")
	ns.Must(t, func() error {
		l, err := netlink.LinkByName("uplink0")
		if err != nil {
			return err
		}
		if l.Attrs().RawFlags&(1<<4) == 0 { // IFF_POINTOPOINT
			t.Fatalf("uplink0 is not point-to-point: flags %v", l.Attrs().Flags)
		}
		got, err := Detect([]netip.Addr{netip.MustParseAddr("192.0.2.10")})
		if err != nil {
			return err
		}
		if !slices.Equal(got, []string{"uplink0"}) {
			t.Errorf("detected %v, want [uplink0]", got)
		}
		return nil
	})
}
