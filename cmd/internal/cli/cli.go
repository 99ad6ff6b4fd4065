// Package cli holds what hivelet's commands share: logging flags and the
// node flags the agent and the kubelet both take.
package cli

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// NewLogger builds the logger of --log-level and --log-format.
func NewLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// Hostname is the default node name, lower-cased as Kubernetes does.
func Hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return strings.ToLower(h)
}

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

// KubeAPICompression adds --kube-api-compression, shared by the commands
// that talk to an API server (kubeclient.Config's compress).
func KubeAPICompression(f *pflag.FlagSet, v *bool) {
	f.BoolVar(v, "kube-api-compression", false, "ask the API server for gzip-compressed responses: less traffic, more CPU on both ends; for an API server behind a slow or metered link")
}

// LogFlags registers --log-level and --log-format.
func LogFlags(f *pflag.FlagSet, level, format *string) {
	f.StringVar(level, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(format, "log-format", "text", "log format: text or json")
}
