package kubeproxy

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

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

	noDummy := false
	// IPVS mode's device and ipsets (this kernel may have no IPVS itself,
	// whose flush is then nothing to do), beside an admin's set.
	ns.Must(t, func() error {
		for _, set := range []string{"KUBE-CLUSTER-IP", "KUBE-6-NODE-PORT-TCP", "admin-set"} {
			if err := netlink.IpsetCreate(set, "hash:ip", netlink.IpsetCreateOptions{}); err != nil {
				return fmt.Errorf("ipset %s: %w", set, err)
			}
		}
		err := netlink.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "kube-ipvs0"}})
		if errors.Is(err, unix.EOPNOTSUPP) {
			noDummy = true // a kernel without the dummy driver: no kube-ipvs0 either
			return nil
		}
		return err
	})

	var r Report
	ns.Must(t, func() (err error) {
		r, err = Cleanup()
		return err
	})
	if len(r.IPSets) != 2 || len(r.Links) != 1 && !noDummy {
		t.Errorf("report %+v, want the two KUBE- ipsets and kube-ipvs0", r)
	}
	ns.Must(t, func() error {
		sets, err := netlink.IpsetListAll()
		if err != nil {
			return err
		}
		if len(sets) != 1 || sets[0].SetName != "admin-set" {
			return fmt.Errorf("ipsets left: %+v, want admin-set only", sets)
		}
		if _, err := netlink.LinkByName("kube-ipvs0"); err == nil {
			return fmt.Errorf("kube-ipvs0 is still there")
		}
		return nil
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
	if r.Chains != 0 || r.Jumps != 0 || len(r.Tables) != 0 || len(r.IPSets) != 0 || len(r.Links) != 0 {
		t.Errorf("a second cleanup found %+v", r)
	}
}
