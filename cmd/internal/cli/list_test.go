package cli

import (
	"net/netip"
	"strings"
	"testing"
)

func TestListFlags(t *testing.T) {
	var cidrs []netip.Prefix
	f := CIDRs(&cidrs)
	if err := f.Set("10.244.1.7/16, fd00:10:244::1/48,"); err != nil {
		t.Fatal(err)
	}
	if f.String() != "10.244.0.0/16,fd00:10:244::/48" || f.Type() != "cidrs" {
		t.Fatalf("%s (%s)", f.String(), f.Type())
	}
	if err := f.Set("10.0.0.0/33"); err == nil || !strings.Contains(err.Error(), "not a CIDR") {
		t.Fatalf("bad CIDR: %v", err)
	}
	var ips []netip.Addr
	g := NodeIPs(&ips)
	if err := g.Set("::ffff:192.0.2.1,2001:db8::1"); err != nil || g.String() != "192.0.2.1,2001:db8::1" {
		t.Fatalf("%v %s", err, g.String())
	}
	if err := g.Set("node-1"); err == nil {
		t.Fatal("a name taken as an address")
	}
}
