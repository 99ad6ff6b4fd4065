package pods

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Limits of a resolv.conf, as the upstream kubelet keeps them: more
// search domains or a longer search line are cut (glibc ignores them).
const (
	maxDNSSearches    = 32
	maxDNSSearchChars = 2048
	maxDNSServers     = 3
)

// resolvConf is a parsed resolv.conf.
type resolvConf struct {
	servers, searches, options []string
}

// readResolvConf reads the node's resolver settings (--resolv-conf);
// none when the path is empty.
func readResolvConf(path string) (resolvConf, error) {
	var rc resolvConf
	if path == "" {
		return rc, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return rc, fmt.Errorf("read --resolv-conf %s: %w", path, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			rc.servers = append(rc.servers, f[1])
		case "search":
			rc.searches = f[1:] // the last search line wins, as in glibc
		case "options":
			rc.options = append(rc.options, f[1:]...)
		}
	}
	return rc, nil
}

// podDNS is the resolver configuration of the pod's sandbox, by its
// dnsPolicy as the upstream kubelet computes it: ClusterFirst (the
// default) uses --cluster-dns with the cluster's search domains and
// ndots:5, except on the node's network where it is Default;
// ClusterFirstWithHostNet uses the cluster's there too; Default is the
// node's --resolv-conf; None only the pod's dnsConfig, which every
// policy then merges in. ClusterFirst without --cluster-dns falls back
// to Default and says so (the second result).
func (m *Manager) podDNS(pod *corev1.Pod) (*runtimeapi.DNSConfig, string) {
	host := m.hostDNS
	policy := pod.Spec.DNSPolicy
	if policy == "" {
		policy = corev1.DNSClusterFirst
	}
	cluster := policy == corev1.DNSClusterFirstWithHostNet || policy == corev1.DNSClusterFirst && !pod.Spec.HostNetwork
	var warn string
	if cluster && len(m.cfg.ClusterDNS) == 0 {
		warn = "kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy."
		cluster = false
	}
	out := &runtimeapi.DNSConfig{}
	switch {
	case policy == corev1.DNSNone:
	case cluster:
		for _, ip := range m.cfg.ClusterDNS {
			out.Servers = append(out.Servers, ip.String())
		}
		domain := m.cfg.ClusterDomain
		if domain != "" {
			out.Searches = []string{pod.Namespace + ".svc." + domain, "svc." + domain, domain}
		}
		out.Searches = append(out.Searches, host.searches...)
		out.Options = []string{"ndots:5"}
	default:
		out.Servers = slices.Clone(host.servers)
		out.Searches = slices.Clone(host.searches)
		out.Options = slices.Clone(host.options)
	}
	if d := pod.Spec.DNSConfig; d != nil {
		out.Servers = appendNew(out.Servers, d.Nameservers...)
		out.Searches = appendNew(out.Searches, d.Searches...)
		for _, o := range d.Options {
			opt := o.Name
			if o.Value != nil {
				opt += ":" + *o.Value
			}
			out.Options = mergeOption(out.Options, o.Name, opt)
		}
	}
	if len(out.Servers) > maxDNSServers {
		out.Servers = out.Servers[:maxDNSServers]
	}
	out.Searches = trimSearches(out.Searches)
	return out, warn
}

func appendNew(list []string, more ...string) []string {
	for _, s := range more {
		if !slices.Contains(list, s) {
			list = append(list, s)
		}
	}
	return list
}

// mergeOption sets option name to opt, replacing one of the same name.
func mergeOption(opts []string, name, opt string) []string {
	for i, o := range opts {
		if n, _, _ := strings.Cut(o, ":"); n == name {
			opts[i] = opt
			return opts
		}
	}
	return append(opts, opt)
}

func trimSearches(s []string) []string {
	s = slices.DeleteFunc(s, func(d string) bool { return d == "" || d == "." })
	if len(s) > maxDNSSearches {
		s = s[:maxDNSSearches]
	}
	for len(s) > 0 && len(strings.Join(s, " ")) > maxDNSSearchChars {
		s = s[:len(s)-1]
	}
	return s
}
