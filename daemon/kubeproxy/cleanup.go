// Package kubeproxy removes what kube-proxy leaves in the kernel, as
// `kube-proxy --cleanup` does, so a node can move from kube-proxy to
// hivelet: its iptables chains and the jumps into them (legacy and nft
// backends, IPv4 and IPv6), its nftables tables, and IPVS mode's virtual
// servers, kube-ipvs0 device and KUBE-* ipsets. Rules and chains of
// anything else (CNI plugins, the admin's
// own, the kubelet's KUBE-KUBELET-CANARY) are left as they are.
package kubeproxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// proxyChains are kube-proxy's fixed chain names; proxyPrefixes begin the
// names of its per-Service and per-endpoint chains.
var (
	proxyChains = map[string]bool{"KUBE-SERVICES": true, "KUBE-EXTERNAL-SERVICES": true, "KUBE-NODEPORTS": true,
		"KUBE-POSTROUTING": true, "KUBE-MARK-MASQ": true, "KUBE-FORWARD": true, "KUBE-PROXY-FIREWALL": true,
		"KUBE-PROXY-CANARY": true, "KUBE-LOAD-BALANCER": true, "KUBE-NODE-PORT": true, "KUBE-FIREWALL-IPVS": true,
		// The kubelet's once; kube-proxy's since 1.27, and removed by
		// its cleanup.
		"KUBE-FIREWALL": true}
	proxyPrefixes = []string{"KUBE-SVC-", "KUBE-SEP-", "KUBE-FW-", "KUBE-XLB-", "KUBE-EXT-", "KUBE-SVL-"}
)

func isProxyChain(name string) bool {
	if proxyChains[name] {
		return true
	}
	for _, p := range proxyPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// Report says what a cleanup removed.
type Report struct {
	Chains, Jumps int      // iptables chains deleted, rules jumping into them removed
	Tables        []string // nftables tables deleted
	IPVSFlushed   bool     // IPVS virtual servers flushed (false: no IPVS in the kernel)
	Links         []string // kube-ipvs0, when it was there
	IPSets        []string // ipsets destroyed
}

// Cleanup removes kube-proxy's state from the network namespace it runs
// in. A backend whose tools are not installed is skipped; the errors of
// the others are joined.
func Cleanup() (Report, error) {
	var r Report
	var errs []error
	for _, tool := range []string{"iptables-legacy", "ip6tables-legacy", "iptables-nft", "ip6tables-nft"} {
		if _, err := exec.LookPath(tool + "-save"); err != nil {
			continue
		}
		chains, jumps, err := cleanXtables(tool)
		r.Chains += chains
		r.Jumps += jumps
		if err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := exec.LookPath("nft"); err == nil {
		tables, err := cleanNftables()
		r.Tables = tables
		if err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, cleanIPVS(&r))
	return r, errors.Join(errs...)
}

// cleanXtables removes kube-proxy's chains from one iptables backend,
// each table in one atomic iptables-restore --noflush: the jumps into
// them deleted, then every one flushed, then every one deleted.
func cleanXtables(tool string) (chains, jumps int, err error) {
	out, err := exec.Command(tool + "-save").Output()
	if err != nil {
		return 0, 0, fmt.Errorf("kube-proxy cleanup: %s-save: %w", tool, err)
	}
	script, chains, jumps := xtablesScript(out)
	if chains == 0 && jumps == 0 {
		return 0, 0, nil
	}
	cmd := exec.Command(tool+"-restore", "--noflush")
	cmd.Stdin = bytes.NewReader(script)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return 0, 0, fmt.Errorf("kube-proxy cleanup: %s-restore: %w: %s", tool, err, strings.TrimSpace(string(msg)))
	}
	return chains, jumps, nil
}

// xtablesScript turns iptables-save output into the iptables-restore
// --noflush input that removes kube-proxy's chains and the jumps into
// them from every table that has any.
func xtablesScript(save []byte) (script []byte, chains, jumps int) {
	var b bytes.Buffer
	var table string
	var deletes, owned []string
	flush := func() {
		if table == "" || len(deletes) == 0 && len(owned) == 0 {
			return
		}
		fmt.Fprintf(&b, "*%s\n", table)
		for _, d := range deletes {
			b.WriteString(d + "\n")
		}
		for _, c := range owned {
			fmt.Fprintf(&b, "-F %s\n", c)
		}
		for _, c := range owned {
			fmt.Fprintf(&b, "-X %s\n", c)
		}
		b.WriteString("COMMIT\n")
		chains += len(owned)
		jumps += len(deletes)
	}
	sc := bufio.NewScanner(bytes.NewReader(save))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "*"):
			flush()
			table, deletes, owned = strings.TrimPrefix(line, "*"), nil, nil
		case strings.HasPrefix(line, ":"):
			if name, _, _ := strings.Cut(line[1:], " "); isProxyChain(name) {
				owned = append(owned, name)
			}
		case strings.HasPrefix(line, "-A "):
			f := strings.Fields(line)
			if len(f) < 2 || isProxyChain(f[1]) {
				continue // goes with its chain
			}
			for i := 2; i+1 < len(f); i++ {
				if (f[i] == "-j" || f[i] == "-g") && isProxyChain(f[i+1]) {
					deletes = append(deletes, "-D "+strings.TrimPrefix(line, "-A "))
					break
				}
			}
		case line == "COMMIT":
			flush()
			table = ""
		}
	}
	return b.Bytes(), chains, jumps
}

// cleanNftables deletes kube-proxy's nftables tables (nftables mode).
func cleanNftables() ([]string, error) {
	var gone []string
	var errs []error
	for _, family := range []string{"ip", "ip6"} {
		if exec.Command("nft", "list", "table", family, "kube-proxy").Run() != nil {
			continue // none
		}
		if msg, err := exec.Command("nft", "delete", "table", family, "kube-proxy").CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("kube-proxy cleanup: nft delete table %s kube-proxy: %w: %s", family, err, strings.TrimSpace(string(msg))))
			continue
		}
		gone = append(gone, family+" kube-proxy")
	}
	return gone, errors.Join(errs...)
}
