package install

import (
	"testing"

	"github.com/hivelet/hivelet/test/testnet"
)

// The pod MTU follows the default route's device, 50 below it with a
// VXLAN overlay; with no default route there is nothing to follow.
func TestPrivilegedDetectMTU(t *testing.T) {
	testnet.RequireRoot(t)
	ns := testnet.NewNS(t, "mtu")
	ns.Must(t, func() error {
		if _, err := DetectMTU(false); err == nil {
			t.Error("an MTU detected with no default route")
		}
		return nil
	})
	ns.IP(t, "link", "add", "uplink0", "mtu", "9000", "type", "veth", "peer", "name", "uplink1", "mtu", "9000")
	ns.IP(t, "link", "set", "uplink0", "up")
	ns.IP(t, "link", "set", "uplink1", "up")
	ns.IP(t, "route", "add", "default", "dev", "uplink0")
	ns.Must(t, func() error {
		for overlay, want := range map[bool]int{false: 9000, true: 8950} {
			got, err := DetectMTU(overlay)
			if err != nil {
				return err
			}
			if got != want {
				t.Errorf("overlay %v: MTU %d, want %d", overlay, got, want)
			}
		}
		return nil
	})
}
