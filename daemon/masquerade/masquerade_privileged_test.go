package masquerade

import (
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hivelet/hivelet/test/testnet"
)

// A pod (10.244.1.5) behind a node (203.0.113.2 on its uplink) reaches a
// server outside (203.0.113.1) that has no route back to pods only once
// the masquerade table is there, and is then seen with the node's
// address; a server inside the cluster CIDR (10.244.9.1, routed through
// the same uplink) still sees the pod's own address. Applying twice
// changes nothing; Remove takes it away.
func TestPrivilegedMasquerade(t *testing.T) {
	testnet.RequireRoot(t)
	node, pod, out := testnet.NewNS(t, "mn"), testnet.NewNS(t, "mp"), testnet.NewNS(t, "mo")
	node.Sysctl(t, "net.ipv4.ip_forward", "1")
	node.IP(t, "link", "add", "p0", "type", "veth", "peer", "name", "eth0", "netns", pod.Name)
	node.IP(t, "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", out.Name)
	node.IP(t, "addr", "add", "10.244.1.1/24", "dev", "p0")
	node.IP(t, "addr", "add", "203.0.113.2/24", "dev", "up0")
	node.IP(t, "link", "set", "p0", "up")
	node.IP(t, "link", "set", "up0", "up")
	node.IP(t, "route", "add", "10.244.9.0/24", "via", "203.0.113.1")
	pod.IP(t, "addr", "add", "10.244.1.5/24", "dev", "eth0")
	pod.IP(t, "link", "set", "eth0", "up")
	pod.IP(t, "route", "add", "default", "via", "10.244.1.1")
	out.IP(t, "addr", "add", "203.0.113.1/24", "dev", "eth0")
	out.IP(t, "addr", "add", "10.244.9.1/32", "dev", "lo")
	out.IP(t, "link", "set", "eth0", "up")
	// Inside the cluster the pod's network is routed; outside it is not:
	// only the cluster server's replies find their way back to pods.
	out.IP(t, "rule", "add", "from", "10.244.9.1", "table", "100")
	out.IP(t, "route", "add", "10.244.1.0/24", "via", "203.0.113.2", "table", "100")
	for _, addr := range []string{"203.0.113.1:8080", "10.244.9.1:8080"} {
		testnet.ListenTCP(t, out, addr, func(c net.Conn) {
			defer c.Close()
			_, _ = io.WriteString(c, strings.Split(c.RemoteAddr().String(), ":")[0])
		})
	}
	// seen dials addr from the pod and returns the source the server saw.
	seen := func(addr string) (string, error) {
		var got string
		err := pod.Do(func() error {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			b, err := io.ReadAll(c)
			got = string(b)
			return err
		})
		return got, err
	}
	if got, err := seen("203.0.113.1:8080"); err == nil {
		t.Fatalf("without masquerade the outside server answered (saw %q): the test shows nothing", got)
	}
	cluster := []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00:10:244::/48")}
	for range 2 {
		node.Must(t, func() error { return Apply(cluster) })
	}
	if got, err := seen("203.0.113.1:8080"); err != nil || got != "203.0.113.2" {
		t.Fatalf("outside: saw %q, %v; want the node's 203.0.113.2", got, err)
	}
	if got, err := seen("10.244.9.1:8080"); err != nil || got != "10.244.1.5" {
		t.Fatalf("inside the cluster CIDR: saw %q, %v; want the pod's own 10.244.1.5", got, err)
	}
	node.Must(t, Remove)
	node.Must(t, Remove) // gone already: still fine
	if got, err := seen("203.0.113.1:8080"); err == nil {
		t.Fatalf("after Remove the outside server still answered (saw %q)", got)
	}
	if err := Apply(nil); err == nil || !strings.Contains(err.Error(), "--cluster-cidr") {
		t.Fatalf("Apply without a CIDR: %v", err)
	}
}
