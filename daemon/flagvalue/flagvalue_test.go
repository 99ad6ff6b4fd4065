package flagvalue

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

func TestPortRange(t *testing.T) {
	var lo, hi uint16
	r := &PortRange{Min: &lo, Max: &hi}
	if r.String() != "" {
		t.Errorf("unset: %q", r.String())
	}
	if err := r.Set("61000-65535"); err != nil || lo != 61000 || hi != 65535 || r.String() != "61000-65535" {
		t.Fatalf("%v %d %d", err, lo, hi)
	}
	for _, bad := range []string{"80-90", "9000-8000", "1024", "a-b", "1024-70000"} {
		if err := r.Set(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
