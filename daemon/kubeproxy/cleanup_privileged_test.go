package kubeproxy

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/hivelet/hivelet/test/testnet"
)

// In a scratch network namespace holding kube-proxy's iptables state in
// both backends and its nftables table, Cleanup removes exactly those,
// and a second run finds nothing left.
func TestPrivilegedCleanup(t *testing.T) {
	testnet.RequireRoot(t)
	for _, tool := range []string{"iptables-legacy-restore", "iptables-nft-restore", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (hack/deps.sh installs it)", tool)
		}
	}
	ns := testnet.NewNS(t, "kp")
	run := func(stdin string, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v: %s", name, args, err, out)
		}
		return string(out)
	}
	run(saved, "iptables-legacy-restore")
	run(saved, "iptables-nft-restore")
	run("", "nft", "add", "table", "ip", "kube-proxy")
	run("", "nft", "add", "chain", "ip", "kube-proxy", "services")
	run("", "nft", "add", "table", "ip", "admin")

	var r Report
	ns.Must(t, func() (err error) {
		r, err = Cleanup()
		return err
	})
	if r.Chains != 16 || r.Jumps != 12 || len(r.Tables) != 1 || r.Tables[0] != "ip kube-proxy" {
		t.Fatalf("report %+v, want 16 chains and 12 jumps (8 and 6 per backend) and the ip kube-proxy table", r)
	}
	for _, save := range []string{"iptables-legacy-save", "iptables-nft-save"} {
		out := run("", save)
		for _, gone := range []string{"KUBE-SERVICES", "KUBE-SVC-", "KUBE-SEP-", "KUBE-MARK-MASQ", "KUBE-POSTROUTING", "KUBE-FORWARD", "KUBE-PROXY-FIREWALL"} {
			if strings.Contains(out, gone) {
				t.Errorf("%s still shows %s:\n%s", save, gone, out)
			}
		}
		for _, kept := range []string{":KUBE-KUBELET-CANARY", "-A INPUT -j KUBE-KUBELET-CANARY", "-A ADMIN -j ACCEPT", "-j MASQUERADE", "MARK --set-xmark"} {
			if !strings.Contains(out, kept) {
				t.Errorf("%s lost %q:\n%s", save, kept, out)
			}
		}
	}
	tables := run("", "nft", "list", "tables")
	if strings.Contains(tables, "kube-proxy") || !strings.Contains(tables, "table ip admin") {
		t.Errorf("nft tables after cleanup:\n%s", tables)
	}
	ns.Must(t, func() (err error) {
		r, err = Cleanup()
		return err
	})
	if r.Chains != 0 || r.Jumps != 0 || len(r.Tables) != 0 {
		t.Errorf("a second cleanup found %+v", r)
	}
}
