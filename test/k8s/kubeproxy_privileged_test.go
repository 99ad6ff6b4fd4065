package k8s

import (
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hivelet/hivelet/daemon/kubeproxy"
	"github.com/hivelet/hivelet/test/harness"
	"github.com/hivelet/hivelet/test/testnet"
)

// TestPrivilegedK8sKubeProxyMigration moves a node from upstream
// kube-proxy to hivelet in the documented order, in both of kube-proxy's
// modes: hivelet's agent serves the node, kube-proxy runs beside it and
// programs the same Service, a client loops on the ClusterIP, kube-proxy
// is stopped, and `--cleanup-kube-proxy`'s cleanup runs. No connection
// fails, and nothing of kube-proxy's is left in the node's iptables or
// nftables.
func TestPrivilegedK8sKubeProxyMigration(t *testing.T) {
	bin := harness.KubeProxyBin()
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no kube-proxy at %s (hack/k8s.sh build makes it)", bin)
	}
	for _, mode := range []string{"iptables", "nftables"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			svc := e.service(t, "kp"+mode[:3], nil)
			vip := netip.AddrPortFrom(netip.MustParseAddr(svc.Spec.ClusterIP), 80)
			e.createSlice(t, e.sliceFor(svc.Name, 0, 1))
			harness.WaitFor(t, "hivelet to serve the Service", func() bool { return len(e.backends(vip.String()+"/TCP")) == 2 })

			harness.ForwardInto(t, e.node.NS, harness.APIServerAddr(t, kubeconfig))
			cmd := exec.Command("nsenter", "--net="+e.node.NS.Path(), "--", bin, "--kubeconfig", kubeconfig,
				"--proxy-mode", mode, "--hostname-override", e.nodeName, "--conntrack-max-per-core", "0",
				"--metrics-bind-address", "127.0.0.1:10249", "--healthz-bind-address", "127.0.0.1:10256")
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			kp := harness.Start(t, cmd)
			dump := func() string {
				var out strings.Builder
				for _, c := range [][]string{{"iptables-legacy-save"}, {"iptables-nft-save"}, {"ip6tables-legacy-save"}, {"ip6tables-nft-save"}, {"nft", "list", "tables"}} {
					b, _ := exec.Command("ip", append([]string{"netns", "exec", e.node.NS.Name}, c...)...).Output()
					out.Write(b)
				}
				return out.String()
			}
			programmed := map[string]string{"iptables": "KUBE-SVC-", "nftables": "table ip kube-proxy"}[mode]
			for end := time.Now().Add(60 * time.Second); !strings.Contains(dump(), programmed); time.Sleep(500 * time.Millisecond) {
				if time.Now().After(end) {
					t.Fatalf("kube-proxy (%s) never programmed the Service:\n%s", mode, harness.Tail(kp.Log(), 20))
				}
			}

			loop := testnet.StartLoop(e.node.NS, vip, 10*time.Millisecond)
			time.Sleep(time.Second)
			kp.Stop(syscall.SIGTERM) // its rules stay, as they do when its DaemonSet goes
			time.Sleep(time.Second)
			var r kubeproxy.Report
			e.node.NS.Must(t, func() (err error) {
				r, err = kubeproxy.Cleanup()
				return err
			})
			time.Sleep(time.Second)
			loop.Stop()
			t.Logf("%s: cleanup removed %d chains, %d jumps, tables %v; %d connections during the switch, %d failed", mode, r.Chains, r.Jumps, r.Tables, loop.OK.Load(), loop.Failed.Load())
			if loop.Failed.Load() != 0 || loop.OK.Load() < 50 {
				t.Errorf("%d of %d connections failed (first: %v)", loop.Failed.Load(), loop.Failed.Load()+loop.OK.Load(), loop.FirstErr())
			}
			if left := regexp.MustCompile(`(?m)^:KUBE-\S+|kube-proxy`).FindAllString(dump(), -1); len(left) > 0 {
				t.Errorf("left after the cleanup: %v", left)
			}
			if got := e.answers(t, vip, 20); len(got) != 2 {
				t.Errorf("after the switch the ClusterIP answers from %v", got)
			}
		})
	}
}
