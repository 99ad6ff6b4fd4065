package cri

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hivelet/hivelet/test/containerd"
	"github.com/hivelet/hivelet/test/harness"
	"github.com/hivelet/hivelet/test/testnet"
)

const clusterIP = "10.96.77.10"

func manifest(backend netip.Addr) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: web, namespace: cri}
spec:
  clusterIP: %s
  ports: [{name: http, port: 80, protocol: TCP, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: cri
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints: [{addresses: [%s], conditions: {ready: true}}]
`, clusterIP, backend)
}

func (r *runtime) held(t *testing.T) []string {
	ents, err := os.ReadDir(filepath.Join(r.CNIData, "hivelet"))
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, e := range ents {
		if _, err := netip.ParseAddr(e.Name()); err == nil {
			ips = append(ips, e.Name())
		}
	}
	return ips
}

func (r *runtime) hostLinks(t *testing.T) int {
	return strings.Count(r.Node.IP(t, "-o", "link", "show"), ": hl")
}

// Two pods through containerd's CRI reach each other on both families
// and a ClusterIP the agent serves; removing a pod frees its address;
// after a containerd restart, `hivelet cni gc` releases an attachment
// containerd never knew, and the running pod keeps its network.
func TestPrivilegedPodsThroughContainerd(t *testing.T) {
	cg := testnet.NewCgroup(t) // before the runtime: its cleanup runs after the pods are gone
	containerd.V1Cleanup(t, filepath.Base(cg))
	r := newRuntime(t, cg)
	parent := "/" + filepath.Base(cg)
	a, b := r.runPod(t, "pod-a", parent), r.runPod(t, "pod-b", parent)
	if len(a.ips) != 2 || len(b.ips) != 2 {
		t.Fatalf("want dual-stack pods, got %v and %v", a.ips, b.ips)
	}
	if got := r.held(t); len(got) != 4 {
		t.Fatalf("held addresses: %v", got)
	}
	for _, ip := range b.ips {
		var last error
		ok := false
		for i := 0; i < 50 && !ok; i++ {
			body, err := r.fetch(a, netip.AddrPortFrom(ip, 8080))
			ok, last = err == nil && body == "pod-b", fmt.Errorf("%q, %v", body, err)
			if !ok {
				time.Sleep(200 * time.Millisecond)
			}
		}
		if !ok {
			t.Fatalf("pod-a to pod-b at %s: %v\nnode routes:\n%s\npod-a: %s", ip, last, r.Node.IP(t, "route"), r.exec(a, "ip", "addr"))
		}
	}

	manifests := t.TempDir()
	if err := os.WriteFile(filepath.Join(manifests, "web.yaml"), []byte(manifest(b.ips[0])), 0o644); err != nil {
		t.Fatal(err)
	}
	bpffs := filepath.Join(t.TempDir(), "bpffs")
	hl := filepath.Join(binDir, "hivelet")
	agent := harness.StartAgent(t, hl, "--manifests", manifests, "--bpffs", bpffs, "--cgroup2", cg)
	t.Cleanup(func() { _, _ = harness.Run(hl, "agent", "--cleanup", "--bpffs", bpffs) })
	harness.WaitFor(t, "agent synced", func() bool { return strings.Contains(agent.Log(), "msg=Synced") })
	body, err := r.fetch(a, netip.MustParseAddrPort(clusterIP+":80"))
	if err != nil || body != "pod-b" {
		t.Fatalf("pod-a to ClusterIP %s: %q, %v", clusterIP, body, err)
	}

	ctx := context.Background()
	if _, err := r.RT.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: b.sandbox}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: b.sandbox}); err != nil {
		t.Fatal(err)
	}
	if got, links := r.held(t), r.hostLinks(t); len(got) != 2 || links != 1 {
		t.Fatalf("after removing pod-b: addresses %v, %d host links", got, links)
	}

	// A leftover: an attachment made behind containerd's back, as when
	// it crashes between ADD and recording the sandbox.
	ghost := testnet.NewNS(t, "ghost")
	list, err := libcni.ConfListFromFile(filepath.Join(r.CNIConf, "05-hivelet.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	cni := libcni.NewCNIConfigWithCacheDir([]string{r.CNIBin}, t.TempDir(), nil)
	r.Node.Must(t, func() error {
		_, err := cni.AddNetworkList(ctx, list, &libcni.RuntimeConf{ContainerID: "ghost", NetNS: ghost.Path(), IfName: "eth0"})
		return err
	})
	if got := r.held(t); len(got) != 4 {
		t.Fatalf("after the ghost ADD: %v", got)
	}
	r.Stop()
	r.Start(t)
	cmd := exec.Command("nsenter", "--net="+r.Node.Path(), "--", hl, "cni", "gc", "--container-runtime-endpoint", "unix://"+r.Sock,
		"--conf-dir", r.CNIConf, "--bin-dir", r.CNIBin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hivelet cni gc: %v\n%s", err, out)
	}
	if got, links := r.held(t), r.hostLinks(t); len(got) != 2 || links != 1 {
		t.Fatalf("after gc: addresses %v, %d host links; want pod-a's only", got, links)
	}
	body, err = r.fetch(a, netip.AddrPortFrom(a.ips[0], 8080))
	if err != nil || body != "pod-a" {
		t.Fatalf("pod-a after the containerd restart and gc: %q, %v", body, err)
	}
}
