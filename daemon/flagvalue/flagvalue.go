// Package flagvalue holds the typed flag values the commands and the
// agent's config share: comma-separated lists of addresses and prefixes,
// and port ranges.
package flagvalue

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// List is a comma-separated list flag of values parse reads (empty
// items skipped); a repeated flag adds to the list. kind names the
// values in --help.
type List[T fmt.Stringer] struct {
	V     *[]T
	parse func(string) (T, error)
	kind  string
}

// NodeIPs is a list of addresses (--node-ip, --cluster-dns).
func NodeIPs(v *[]netip.Addr) *List[netip.Addr] {
	return &List[netip.Addr]{V: v, kind: "ips", parse: func(s string) (netip.Addr, error) {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return a, fmt.Errorf("not an IP address: %q", s)
		}
		return a.Unmap(), nil
	}}
}

// CIDRs is a list of prefixes, masked (--cluster-cidr).
func CIDRs(v *[]netip.Prefix) *List[netip.Prefix] {
	return &List[netip.Prefix]{V: v, kind: "cidrs", parse: func(s string) (netip.Prefix, error) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Errorf("not a CIDR such as 10.244.0.0/16: %q", s)
		}
		return p.Masked(), nil
	}}
}

func (l *List[T]) String() string {
	if l.V == nil {
		return ""
	}
	parts := make([]string, len(*l.V))
	for i, x := range *l.V {
		parts[i] = x.String()
	}
	return strings.Join(parts, ",")
}

func (l *List[T]) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		x, err := l.parse(p)
		if err != nil {
			return err
		}
		*l.V = append(*l.V, x)
	}
	return nil
}

func (l *List[T]) Type() string { return l.kind }

// PortRange is the --snat-port-range flag: MIN-MAX.
type PortRange struct{ Min, Max *uint16 }

func (r *PortRange) String() string {
	if r.Min == nil || *r.Min == 0 {
		return ""
	}
	return fmt.Sprintf("%d-%d", *r.Min, *r.Max)
}

func (r *PortRange) Set(s string) error {
	lo, hi, ok := strings.Cut(s, "-")
	a, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	b, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
	if !ok || err1 != nil || err2 != nil || a < 1024 || a > b {
		return fmt.Errorf("want MIN-MAX with 1024 <= MIN <= MAX <= 65535, got %q", s)
	}
	*r.Min, *r.Max = uint16(a), uint16(b)
	return nil
}

func (r *PortRange) Type() string { return "range" }
