package e2e

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"strings"
)

// The rules kube-proxy v1.37 writes for Services, generated the same way
// (chain names from a hash of the service port name, one chain per
// Service and per endpoint, masquerade marks), so the NodePort benchmark
// measures what a kube-proxy node does per packet without running the
// control plane. Every Service has three endpoints on eps; the one named
// "np" also has NodePort 30080.

type kpService struct {
	name string
	vip  string
}

func kpServices(n int) []kpService {
	out := make([]kpService, n)
	for i := range out {
		out[i] = kpService{name: fmt.Sprintf("svc-%d", i), vip: fmt.Sprintf("10.96.%d.%d", (i/250)%250, i%250+1)}
	}
	out[0].name = "np"
	return out
}

// kpChain is kube-proxy's servicePortChainName: prefix + 16 chars of
// base32(sha256(name + protocol)).
func kpChain(prefix, name string) string {
	h := sha256.Sum256([]byte(name + "tcp"))
	return prefix + base32.StdEncoding.EncodeToString(h[:])[:16]
}

// iptablesRules is an iptables-restore input for the nat table.
func iptablesRules(n int, eps []string) string {
	var b strings.Builder
	svcs := kpServices(n)
	b.WriteString("*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-POSTROUTING - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n")
	for _, s := range svcs {
		port := "default/" + s.name + ":http"
		fmt.Fprintf(&b, ":%s - [0:0]\n", kpChain("KUBE-SVC-", port))
		if s.name == "np" {
			fmt.Fprintf(&b, ":%s - [0:0]\n", kpChain("KUBE-EXT-", port))
		}
		for _, ep := range eps {
			fmt.Fprintf(&b, ":%s - [0:0]\n", kpChain("KUBE-SEP-", port+ep))
		}
	}
	b.WriteString(`-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
`)
	for _, s := range svcs {
		port := "default/" + s.name + ":http"
		svc := kpChain("KUBE-SVC-", port)
		fmt.Fprintf(&b, "-A KUBE-SERVICES -d %s/32 -p tcp -m comment --comment \"%s cluster IP\" -m tcp --dport 80 -j %s\n", s.vip, port, svc)
		fmt.Fprintf(&b, "-A %s ! -s 10.244.0.0/16 -d %s/32 -p tcp -m comment --comment \"%s cluster IP\" -m tcp --dport 80 -j KUBE-MARK-MASQ\n", svc, s.vip, port)
		for i, ep := range eps {
			sep := kpChain("KUBE-SEP-", port+ep)
			if left := len(eps) - i; left > 1 {
				fmt.Fprintf(&b, "-A %s -m comment --comment \"%s -> %s:8080\" -m statistic --mode random --probability %.11f -j %s\n", svc, port, ep, 1/float64(left), sep)
			} else {
				fmt.Fprintf(&b, "-A %s -m comment --comment \"%s -> %s:8080\" -j %s\n", svc, port, ep, sep)
			}
			fmt.Fprintf(&b, "-A %s -s %s/32 -m comment --comment \"%s\" -j KUBE-MARK-MASQ\n", sep, ep, port)
			fmt.Fprintf(&b, "-A %s -p tcp -m comment --comment \"%s\" -m tcp -j DNAT --to-destination %s:8080\n", sep, port, ep)
		}
		if s.name == "np" {
			ext := kpChain("KUBE-EXT-", port)
			fmt.Fprintf(&b, "-A KUBE-NODEPORTS -p tcp -m comment --comment \"%s\" -m tcp --dport 30080 -j %s\n", port, ext)
			fmt.Fprintf(&b, "-A %s -m comment --comment \"masquerade traffic for %s external destinations\" -j KUBE-MARK-MASQ\n", ext, port)
			fmt.Fprintf(&b, "-A %s -j %s\n", ext, svc)
		}
	}
	b.WriteString("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\nCOMMIT\n")
	return b.String()
}

// nftRules is kube-proxy's nftables ruleset: verdict maps from (VIP,
// protocol, port) and (protocol, NodePort) to per-Service chains, and
// numgen for the endpoint choice.
func nftRules(n int, eps []string) string {
	var b strings.Builder
	svcs := kpServices(n)
	name := func(prefix, s string) string { return prefix + strings.ToLower(kpChain("", s)) }
	b.WriteString("table ip kube-proxy {\n")
	b.WriteString("  chain mark-for-masquerade {\n    mark set mark or 0x4000\n  }\n")
	b.WriteString("  chain masquerading {\n    type nat hook postrouting priority 100; policy accept;\n    mark and 0x4000 == 0 return\n    mark set mark xor 0x4000\n    masquerade fully-random\n  }\n")
	for _, s := range svcs {
		port := "default/" + s.name + ":http"
		fmt.Fprintf(&b, "  chain %s {\n    ip daddr %s tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade\n    numgen random mod %d vmap {", name("service-", port), s.vip, len(eps))
		for i, ep := range eps {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, " %d : goto %s", i, name("endpoint-", port+ep))
		}
		b.WriteString(" }\n  }\n")
		for _, ep := range eps {
			fmt.Fprintf(&b, "  chain %s {\n    ip saddr %s jump mark-for-masquerade\n    meta l4proto tcp dnat to %s:8080\n  }\n", name("endpoint-", port+ep), ep, ep)
		}
		if s.name == "np" {
			fmt.Fprintf(&b, "  chain %s {\n    jump mark-for-masquerade\n    goto %s\n  }\n", name("external-", port), name("service-", port))
		}
	}
	b.WriteString("  map service-ips {\n    type ipv4_addr . inet_proto . inet_service : verdict\n    elements = {")
	for i, s := range svcs {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "\n      %s . tcp . 80 : goto %s", s.vip, name("service-", "default/"+s.name+":http"))
	}
	b.WriteString("\n    }\n  }\n")
	fmt.Fprintf(&b, "  map service-nodeports {\n    type inet_proto . inet_service : verdict\n    elements = { tcp . 30080 : goto %s }\n  }\n", name("external-", "default/np:http"))
	b.WriteString(`  chain services {
    ip daddr . meta l4proto . th dport vmap @service-ips
    fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports
  }
  chain nat-prerouting {
    type nat hook prerouting priority -100; policy accept;
    jump services
  }
  chain nat-output {
    type nat hook output priority -100; policy accept;
    jump services
  }
}
`)
	return b.String()
}
