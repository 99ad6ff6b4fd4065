package e2e

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hivelet/hivelet/datapath"
	"github.com/hivelet/hivelet/test/harness"
	"github.com/hivelet/hivelet/test/testnet"
)

// addRoutedPod wires a pod the way hivelet-cni does: a veth whose host
// end is named hl*, the pod's /32 routed to it, the pod's default route
// via a link-local gateway pinned to the host end's MAC.
func addRoutedPod(t *testing.T, node *testnet.NS, idx int) (*testnet.NS, string) {
	pod := testnet.NewNS(t, "hlp")
	ip := fmt.Sprintf("10.244.0.%d", 10+idx)
	host, mac := fmt.Sprintf("hlpod%d", idx), fmt.Sprintf("02:00:00:00:01:%02x", idx)
	node.IP(t, "link", "add", host, "address", mac, "type", "veth", "peer", "name", "eth0", "netns", pod.Name)
	node.IP(t, "link", "set", host, "up")
	node.IP(t, "route", "add", ip+"/32", "dev", host)
	pod.IP(t, "addr", "add", ip+"/32", "dev", "eth0")
	pod.IP(t, "link", "set", "eth0", "up")
	pod.IP(t, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
	pod.IP(t, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
	pod.IP(t, "neigh", "add", "169.254.1.1", "lladdr", mac, "dev", "eth0", "nud", "permanent")
	return pod, ip
}

// With --socket-lb-host-only, a pod's connection to a ClusterIP is not
// translated at connect() (the client runs in the agent's cgroup, where
// socket LB would otherwise act) but per packet on its veth: backends see
// the pod's address, and a pod reaches itself through its own Service.
func TestPrivilegedSocketLBHostOnly(t *testing.T) {
	node := testnet.NewNS(t, "hlnode")
	node.Sysctl(t, "net.ipv4.conf.all.forwarding", "1")
	var pods [4]*testnet.NS
	var ips [4]string
	for i := 1; i <= 3; i++ {
		pods[i], ips[i] = addRoutedPod(t, node, i)
		if i > 1 {
			serveClientAddr(t, pods[i], fmt.Sprintf("pod-%d", i))
		}
	}
	dir, bpffs, cg := t.TempDir(), filepath.Join(t.TempDir(), "bpffs"), testnet.NewCgroup(t)
	slice := func(name, svc string, ips ...string) string {
		var eps strings.Builder
		for _, ip := range ips {
			fmt.Fprintf(&eps, "- {addresses: [%s], conditions: {ready: true}, nodeName: node}\n", ip)
		}
		return fmt.Sprintf("---\napiVersion: v1\nkind: Service\nmetadata: {name: %[1]s, namespace: default}\nspec: {clusterIP: %[2]s, ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]}\n"+
			"---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: %[1]s-1, namespace: default, labels: {kubernetes.io/service-name: %[1]s}}\naddressType: IPv4\nports: [{name: http, port: 8080, protocol: TCP}]\nendpoints:\n%[3]s",
			name, svc, eps.String())
	}
	writeFile(t, filepath.Join(dir, "svc.yaml"), slice("web", "10.96.0.60", ips[2], ips[3])+slice("self", "10.96.0.61", ips[2]))
	a := harness.Start(t, execIn(node, hiveletBin, "agent", "--manifests", dir, "--bpffs", bpffs, "--cgroup2", cg,
		"--hostname-override", "node", "--devices", "none", "--socket-lb-host-only",
		"--healthz-bind-address", "127.0.0.1:0", "--metrics-bind-address", "127.0.0.1:0"))
	t.Cleanup(func() { _, _ = harness.Run(hiveletBin, "agent", "--cleanup", "--bpffs", bpffs) })
	harness.WaitFor(t, "agent programs the ClusterIPs", func() bool {
		return len(backendsOf(t, bpffs, "10.96.0.61:80/TCP")) == 1 && strings.Contains(a.Log(), "pods are served on their veths")
	})
	testnet.EnterCgroup(t, cg)

	hello := func(from *testnet.NS, addr string) string {
		t.Helper()
		var line string
		from.Must(t, func() error {
			c, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(3 * time.Second))
			buf := make([]byte, 128)
			n, err := c.Read(buf)
			line = strings.TrimSpace(string(buf[:n]))
			return err
		})
		return line
	}
	seen := map[string]bool{}
	for i := 0; i < 30 && len(seen) < 2; i++ {
		seen[hello(pods[1], "10.96.0.60:80")] = true
	}
	for _, want := range []string{"pod-2 " + ips[1], "pod-3 " + ips[1]} {
		if !seen[want] {
			t.Errorf("never saw %q (backend seeing the client pod's address); saw %v", want, seen)
		}
	}
	if got := hello(pods[2], "10.96.0.61:80"); got != "pod-2 169.254.42.1" {
		t.Errorf("hairpin answered %q, want pod-2 seeing the hairpin address", got)
	}
	// A pod created while the agent runs gets the programs too, and a
	// deleted one's pins go.
	pod4, ip4 := addRoutedPod(t, node, 4)
	harness.WaitFor(t, "agent attaches to a new pod veth", func() bool {
		pods, _ := datapath.AttachedPods(bpffs)
		return slices.Contains(pods, "hlpod4")
	})
	if got := hello(pod4, "10.96.0.61:80"); got != "pod-2 "+ip4 {
		t.Errorf("new pod reached %q, want pod-2 seeing %s", got, ip4)
	}
	node.IP(t, "link", "del", "hlpod4")
	harness.WaitFor(t, "agent drops a deleted pod veth's pins", func() bool {
		pods, _ := datapath.AttachedPods(bpffs)
		return !slices.Contains(pods, "hlpod4")
	})

	_, page := httpGetIn(t, node, a.Addr("metrics"), "/metrics")
	if v := harness.Metric(page, `hivelet_datapath_packets_total{reason="xlate_new"}`); v < 3 {
		t.Errorf("per-packet translations of new flows: %v, want the pods' connections (>= 3)", v)
	}
}

// execIn prepares a command to run in a namespace (through nsenter, so
// /sys and the cgroup mounts stay visible, unlike `ip netns exec`).
func execIn(ns *testnet.NS, name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + ns.Path(), "--", name}, args...)...)
}
