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

	"github.com/hivelet/hivelet/daemon/flagvalue"
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

// List, NodeIPs and CIDRs are flagvalue's, here for the commands' use.
type List[T fmt.Stringer] = flagvalue.List[T]

// NodeIPs is a list of addresses (--node-ip, --cluster-dns).
func NodeIPs(v *[]netip.Addr) *List[netip.Addr] { return flagvalue.NodeIPs(v) }

// CIDRs is a list of prefixes, masked (--cluster-cidr).
func CIDRs(v *[]netip.Prefix) *List[netip.Prefix] { return flagvalue.CIDRs(v) }

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
