package k8sbench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/hivelet/hivelet/datapath"
	"github.com/hivelet/hivelet/test/harness"
	"github.com/hivelet/hivelet/test/testnet"
)

// kubeProxyModes are the upstream kube-proxy set-ups the benchmark knows:
// the proxy mode and, for iptables, which xtables backend its `iptables`
// commands reach (Debian ships both; kube-proxy runs whichever is first
// in PATH).
var kubeProxyModes = map[string]struct{ mode, xtables string }{
	"kube-proxy-nftables":        {"nftables", ""},
	"kube-proxy-iptables-legacy": {"iptables", "xtables-legacy-multi"},
	"kube-proxy-iptables-nft":    {"iptables", "xtables-nft-multi"},
}

const kubeProxyNode = "kube-proxy-bench"

// kubeProxy runs the real kube-proxy of hack/k8s.sh in a network
// namespace of its own (its rules never touch this machine's), reaching
// the loopback API server through a forwarder. Programmed means: the
// first full sync is done (kube-proxy syncs nothing before its informers
// have synced), and for a change, kube-proxy's own
// network_programming_duration observation for the slice's
// last-change-trigger-time, which it records after the ruleset is
// committed.
func kubeProxy(b *testing.B, name, kubeconfig string, client kubernetes.Interface) proxy {
	m := kubeProxyModes[name]
	ns := testnet.NewNS(b, "kp")
	harness.ForwardInto(b, ns, harness.APIServerAddr(b, kubeconfig))
	ensureNode(b, client, ns)

	path := os.Getenv("PATH")
	if m.xtables != "" {
		dir := b.TempDir()
		for _, cmd := range []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"} {
			if err := os.Symlink("/usr/sbin/"+m.xtables, filepath.Join(dir, cmd)); err != nil {
				b.Fatal(err)
			}
		}
		path = dir + ":" + path
	}
	metrics := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := ns.Do(func() (err error) {
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}}}
	scrape := func() string {
		resp, err := metrics.Get("http://127.0.0.1:10249/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		page, _ := io.ReadAll(resp.Body)
		return string(page)
	}
	// The Services are IPv4: the IPv4 proxier's figures count.
	const v4 = `{ip_family="IPv4"}`
	const npd = "kubeproxy_network_programming_duration_seconds"
	// A histogram appears with its first observation.
	observed := func(page, sample string) float64 { return max(harness.Metric(page, sample), 0) }
	var p proxy
	p.start = func(b *testing.B) *harness.Agent {
		cmd := exec.Command("nsenter", "--net="+ns.Path(), "--", harness.KubeProxyBin(),
			"--kubeconfig", kubeconfig, "--proxy-mode", m.mode, "--hostname-override", kubeProxyNode,
			// Leave the machine-wide conntrack table size alone.
			"--conntrack-max-per-core", "0",
			"--metrics-bind-address", "127.0.0.1:10249", "--healthz-bind-address", "127.0.0.1:10256")
		cmd.Env = append(os.Environ(), "PATH="+path)
		// Not left running when the benchmark is interrupted.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		return harness.Start(b, cmd)
	}
	p.synced = func() bool {
		return harness.Metric(scrape(), "kubeproxy_sync_proxy_rules_last_timestamp_seconds"+v4) > 0
	}
	p.fullSync = func(b *testing.B) time.Duration {
		// Observed as the sync that set the timestamp synced waits for
		// returns: a moment after it.
		const full = "kubeproxy_sync_full_proxy_rules_duration_seconds"
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			page := scrape()
			if n := observed(page, full+"_count"+v4); n >= 1 {
				return time.Duration(observed(page, full+"_sum"+v4) / n * float64(time.Second))
			}
		}
		b.Fatalf("%s: no %s observation after its first sync", name, full)
		return 0
	}
	p.watch = func(datapath.Frontend, netip.AddrPort) func(time.Time) time.Duration {
		page := scrape()
		count, sum := observed(page, npd+"_count"+v4), observed(page, npd+"_sum"+v4)
		return func(t0 time.Time) time.Duration {
			for {
				page := scrape()
				if c := observed(page, npd+"_count"+v4); c > count {
					if c != count+1 {
						b.Fatalf("%s: %v programming observations for one change", name, c-count)
					}
					return time.Duration((observed(page, npd+"_sum"+v4) - sum) * float64(time.Second))
				}
				if time.Since(t0) > time.Minute {
					b.Fatalf("%s: change never programmed", name)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	p.verify = func(b *testing.B, want netip.AddrPort) {
		dump := []string{"nft", "list", "ruleset"}
		if m.xtables != "" {
			dump = []string{"iptables-save", "-t", "nat"}
		}
		cmd := exec.Command("ip", append([]string{"netns", "exec", ns.Name}, dump...)...)
		cmd.Env = append(os.Environ(), "PATH="+path)
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("%s: %v", strings.Join(dump, " "), err)
		}
		// iptables-save prints 10.1.2.3:8080, nft a map element 10.1.2.3 . 8080.
		if !strings.Contains(string(out), want.String()) && !strings.Contains(string(out), fmt.Sprintf("%s . %d", want.Addr(), want.Port())) {
			b.Fatalf("%s: the last change (backend %s) is not in the ruleset", name, want)
		}
	}
	return p
}

// ensureNode registers the Node kube-proxy looks itself up as, with an
// address that exists in its namespace.
func ensureNode(b *testing.B, client kubernetes.Interface, ns *testnet.NS) {
	const ip = "192.0.2.10"
	ns.IP(b, "addr", "add", ip+"/32", "dev", "lo")
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: kubeProxyNode},
		Status:     corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}},
	}
	_, err := client.CoreV1().Nodes().Create(context.Background(), node, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		b.Fatal(fmt.Errorf("create node %s: %w", kubeProxyNode, err))
	}
}
