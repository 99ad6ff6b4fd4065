package k8s

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hivelet/hivelet/test/harness"
	"github.com/hivelet/hivelet/test/testnet"
)

// createNode registers a Node with pod CIDRs and an InternalIP (status is
// a subresource: it goes in with a status update).
func createNode(t *testing.T, name, podCIDR, ip string) {
	ctx := context.Background()
	n, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.NodeSpec{PodCIDR: podCIDR, PodCIDRs: []string{podCIDR}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
}

// The agent, in a node namespace, keeps routes to the other nodes' pod
// CIDRs as Nodes come and go in the API server: natively, or through the
// VXLAN overlay.
func TestPrivilegedK8sPodRoutes(t *testing.T) {
	for _, mode := range []string{"native", "vxlan"} {
		t.Run(mode, func(t *testing.T) {
			testnet.RequireRoot(t)
			prefix := fmt.Sprintf("hl%d-%s-", os.Getpid(), mode)
			ns := testnet.NewNS(t, "rtnode")
			ns.IP(t, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
			ns.IP(t, "addr", "add", "192.168.70.1/24", "dev", "eth0")
			ns.IP(t, "link", "set", "eth0", "up")
			ns.IP(t, "link", "set", "peer0", "up")
			harness.ForwardInto(t, ns, harness.APIServerAddr(t, kubeconfig))
			self := prefix + "a"
			createNode(t, self, "10.246.1.0/24", "192.168.70.1")
			createNode(t, prefix+"b", "10.246.2.0/24", "192.168.70.2")

			bpffs := filepath.Join(t.TempDir(), "bpffs")
			t.Cleanup(func() { _, _ = harness.Run(hiveletBin, "agent", "--cleanup", "--bpffs", bpffs) })
			cmd := exec.Command("nsenter", "--net="+ns.Path(), "--", hiveletBin, "agent", "--devices", "none", "--kubeconfig", kubeconfig,
				"--bpffs", bpffs, "--cgroup2", testnet.NewCgroup(t), "--hostname-override", self, "--pod-routes", mode,
				"--healthz-bind-address", "127.0.0.1:0", "--metrics-bind-address", "127.0.0.1:0")
			harness.Start(t, cmd)

			via := map[string]string{"native": "via 192.168.70.2 dev eth0", "vxlan": "via 10.246.2.0 dev hivelet.vxlan"}[mode]
			routes := func() string { return ns.IP(t, "route", "show", "proto", "98") }
			harness.WaitFor(t, "route to node b's pods", func() bool { return strings.Contains(routes(), "10.246.2.0/24 "+via) })
			createNode(t, prefix+"c", "10.246.3.0/24", "192.168.70.3")
			harness.WaitFor(t, "route to node c's pods", func() bool { return strings.Contains(routes(), "10.246.3.0/24") })
			if err := client.CoreV1().Nodes().Delete(context.Background(), prefix+"b", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			harness.WaitFor(t, "route to deleted node b gone", func() bool { return !strings.Contains(routes(), "10.246.2.0/24") })
			if strings.Contains(routes(), "10.246.1.0/24") {
				t.Errorf("a route to the node's own pods:\n%s", routes())
			}
		})
	}
}
