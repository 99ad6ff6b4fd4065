package k8s

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hivelet/hivelet/daemon/kubeproxy"
	"github.com/hivelet/hivelet/test/harness"
	"github.com/hivelet/hivelet/test/testnet"
)

// TestPrivilegedK8sKubeProxyMigration moves a node from upstream
// kube-proxy to hivelet in the documented order, in both of kube-proxy's
// modes: hivelet's agent serves the node, kube-proxy runs beside it and
// programs the same NodePort Service, a client on the node loops on the
// ClusterIP and one outside the node on the NodePort (through the agent's
// TC programs on the node's uplink, ahead of kube-proxy's rules),
// kube-proxy is stopped, and `--cleanup-kube-proxy`'s cleanup runs. No
// connection fails, and nothing of kube-proxy's is left in the node's
// iptables or nftables.
func TestPrivilegedK8sKubeProxyMigration(t *testing.T) {
	bin := harness.KubeProxyBin()
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no kube-proxy at %s (hack/k8s.sh build makes it)", bin)
	}
	for _, mode := range []string{"iptables", "nftables"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			svc := e.service(t, "kp"+mode[:3], func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort })
			vip := netip.AddrPortFrom(netip.MustParseAddr(svc.Spec.ClusterIP), 80)
			// The pods are this node's, as the EndpointSlice controller
			// says of a node's pods: replies from a local backend need no
			// SNAT to come back through the node's uplink.
			slice := e.sliceFor(svc.Name, 0, 1)
			for i := range slice.Endpoints {
				slice.Endpoints[i].NodeName = &e.nodeName
			}
			e.createSlice(t, slice)
			harness.WaitFor(t, "hivelet to serve the Service", func() bool { return len(e.backends(vip.String()+"/TCP")) == 2 })

			harness.ForwardInto(t, e.node.NS, harness.APIServerAddr(t, kubeconfig))
			outside := outsideClient(t, e, svc)
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
			outside.start(t)
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
			answers, fails := outside.stop(t)
			t.Logf("%s: %d NodePort requests from outside during the switch, %d failed", mode, len(answers), fails)
			if fails != 0 || len(answers) < 20 {
				t.Errorf("NodePort from outside: %d of %d requests failed", fails, len(answers)+fails)
			}
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

// outsideLoop is a client outside the node asking a NodePort in a loop,
// a process of its own in a cgroup without socket hooks, so its packets
// cross the node's uplink (where a second agent, in the node's
// namespace, has its TC programs) as a real client's do.
type outsideLoop struct {
	cmd  *exec.Cmd
	dir  string
	args []string
}

// outsideClient wires a namespace to the node (out0, 192.168.71.0/24)
// and starts an agent in the node's namespace with --devices out0.
func outsideClient(t *testing.T, e *env, svc *corev1.Service) *outsideLoop {
	t.Helper()
	out := testnet.NewNS(t, "hlout")
	e.node.NS.IP(t, "link", "add", "out0", "type", "veth", "peer", "name", "eth0", "netns", out.Name)
	e.node.NS.IP(t, "addr", "add", "192.168.71.1/24", "dev", "out0")
	e.node.NS.IP(t, "link", "set", "out0", "up")
	e.node.NS.Sysctl(t, "net.ipv4.conf.all.forwarding", "1")
	out.IP(t, "addr", "add", "192.168.71.100/24", "dev", "eth0")
	out.IP(t, "link", "set", "eth0", "up")
	// The uplink's address is the Node's too, as a real node's is: the
	// NodePort the client asks is there.
	node, err := client.CoreV1().Nodes().Get(t.Context(), e.nodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Status.Addresses = append(node.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "192.168.71.1"})
	if _, err := client.CoreV1().Nodes().UpdateStatus(t.Context(), node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	bpffs := t.TempDir() + "/bpffs"
	t.Cleanup(func() { _, _ = harness.Run(hiveletBin, "agent", "--cleanup", "--bpffs", bpffs) })
	cmd := exec.Command("nsenter", "--net="+e.node.NS.Path(), "--", hiveletBin, "agent", "--kubeconfig", kubeconfig,
		"--hostname-override", e.nodeName, "--devices", "out0", "--bpffs", bpffs, "--cgroup2", testnet.NewCgroup(t),
		"--healthz-bind-address", "127.0.0.1:0", "--metrics-bind-address", "127.0.0.1:0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	harness.Start(t, cmd)
	nodePort := netip.AddrPortFrom(netip.MustParseAddr("192.168.71.1"), uint16(svc.Spec.Ports[0].NodePort))
	harness.WaitFor(t, "the node's agent to serve the NodePort", func() bool {
		return len(harness.BackendsOf(hiveletBin, bpffs, nodePort.String()+"/TCP")) == 2
	})
	// One connection per request: the pod's name (5 bytes) or FAIL.
	ask := fmt.Sprintf(`exec 3<>/dev/tcp/%s/%d && IFS= read -r -N 5 x <&3 && echo "$x"`, nodePort.Addr(), nodePort.Port())
	dir := t.TempDir()
	loop := fmt.Sprintf(`while [ ! -e %[1]s/stop ]; do timeout 2 bash -c '%[2]s' 2>/dev/null || echo FAIL; sleep 0.01; done > %[1]s/answers`, dir, ask)
	return &outsideLoop{dir: dir, args: []string{"-c", `echo $$ > "$1/cgroup.procs" && exec nsenter --net="$2" bash -c "$3"`, "sh",
		testnet.NewCgroup(t), out.Path(), loop}}
}

func (o *outsideLoop) start(t *testing.T) {
	t.Helper()
	o.cmd = exec.Command("sh", o.args...)
	o.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := o.cmd.Start(); err != nil {
		t.Fatal(err)
	}
}

// stop ends the loop: the answers it got, and how many requests failed.
func (o *outsideLoop) stop(t *testing.T) (answers []string, fails int) {
	t.Helper()
	if err := os.WriteFile(o.dir+"/stop", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_ = o.cmd.Wait()
	b, err := os.ReadFile(o.dir + "/answers")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Fields(string(b)) {
		if l == "FAIL" {
			fails++
		} else {
			answers = append(answers, l)
		}
	}
	return answers, fails
}
