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

// NodeIPs is the --node-ip flag: comma-separated addresses.
type NodeIPs struct{ V *[]netip.Addr }

func (n *NodeIPs) String() string {
	if n.V == nil {
		return ""
	}
	parts := make([]string, len(*n.V))
	for i, a := range *n.V {
		parts[i] = a.String()
	}
	return strings.Join(parts, ",")
}

func (n *NodeIPs) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		a, err := netip.ParseAddr(p)
		if err != nil {
			return fmt.Errorf("not an IP address: %q", p)
		}
		*n.V = append(*n.V, a.Unmap())
	}
	return nil
}

func (n *NodeIPs) Type() string { return "ips" }

// KubeAPICompression adds --kube-api-compression, shared by the commands
// that talk to an API server (kubeclient.Config's compress).
func KubeAPICompression(f *pflag.FlagSet, v *bool) {
	f.BoolVar(v, "kube-api-compression", false, "ask the API server for gzip-compressed responses: less traffic, more CPU on both ends; for an API server behind a slow or metered link")
}
