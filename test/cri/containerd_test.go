// Package cri runs hivelet-cni under the real container runtime: Debian's
// containerd 1.6 with runc, driven through CRI as a kubelet drives it,
// with containerd itself in a node namespace the test makes (so pod routes
// never touch this machine's own), images built from busybox-static, and
// the hivelet agent serving a ClusterIP to the pods.
package cri

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hivelet/hivelet/test/harness"
	"github.com/hivelet/hivelet/test/images"
	"github.com/hivelet/hivelet/test/testnet"
)

const (
	busyboxRef = "hivelet.test/busybox:1"
	pauseRef   = "hivelet.test/pause:1"
)

var binDir string // hivelet and hivelet-cni

func TestMain(m *testing.M) {
	os.Exit(harness.BuildMain(m, "hivelet-cri-bin-", map[string]string{
		"hivelet":     "github.com/hivelet/hivelet/cmd/hivelet",
		"hivelet-cni": "github.com/hivelet/hivelet/cmd/hivelet-cni",
	}, &binDir))
}

// runtime is a containerd serving CRI on a socket of its own, running in
// the node namespace, using hivelet-cni.
type runtime struct {
	dir, sock, cniBin, cniConf, cniData string
	cgroup                              string // pods' cgroup parent (v2 path)
	node                                *testnet.NS
	proc                                *exec.Cmd
	rt                                  runtimeapi.RuntimeServiceClient
	conn                                *grpc.ClientConn
}

const containerdConfig = `version = 2
root = %[1]q
state = %[2]q
[grpc]
  address = %[3]q
[ttrpc]
  address = "%[3]s.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[4]q
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[5]q
    conf_dir = %[6]q
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
`

func newRuntime(t *testing.T, cgroup string) *runtime {
	testnet.RequireRoot(t)
	for _, tool := range []string{"containerd", "runc", "ctr"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: run hack/deps.sh (Debian containerd and runc)", tool)
		}
	}
	// Short paths: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("/tmp", "hlcri")
	if err != nil {
		t.Fatal(err)
	}
	r := &runtime{dir: dir, sock: filepath.Join(dir, "c.sock"), cniBin: filepath.Join(dir, "cni-bin"),
		cniConf: filepath.Join(dir, "net.d"), cniData: filepath.Join(dir, "ipam"), node: testnet.NewNS(t, "crinode"), cgroup: cgroup}
	if out, err := exec.Command(filepath.Join(binDir, "hivelet"), "cni", "install", "--bin-dir", r.cniBin, "--conf-dir", r.cniConf,
		"--pod-cidr", "10.244.9.0/24,fd00:10:244:9::/64", "--plugin", filepath.Join(binDir, "hivelet-cni"), "--standalone").CombinedOutput(); err != nil {
		t.Fatalf("hivelet cni install: %v\n%s", err, out)
	}
	// containerd 1.6 also runs the reference loopback plugin for every
	// pod, from the same bin dir, as real nodes have it.
	if err := os.Symlink("/usr/lib/cni/loopback", filepath.Join(r.cniBin, "loopback")); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(r.cniConf, "05-hivelet.conflist")
	raw, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	// The test's own address store, not /var/lib/cni.
	raw = []byte(strings.Replace(string(raw), `"ipam": {`, fmt.Sprintf(`"ipam": {"dataDir": %q,`, r.cniData), 1))
	if err := os.WriteFile(conf, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, containerdConfig, filepath.Join(dir, "root"), filepath.Join(dir, "state"),
		r.sock, pauseRef, r.cniBin, r.cniConf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.shutdown(t) })
	r.start(t)
	for ref, cmd := range map[string][]string{busyboxRef: {"sh"}, pauseRef: {"sleep", "2147483647"}} {
		archive := filepath.Join(dir, strings.NewReplacer("/", "_", ":", "_").Replace(ref)+".tar")
		if err := images.BuildBusybox(archive, ref, cmd); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("ctr", "--address", r.sock, "-n", "k8s.io", "images", "import", archive).CombinedOutput(); err != nil {
			t.Fatalf("ctr images import %s: %v\n%s", ref, err, out)
		}
	}
	return r
}

// start runs containerd in the node namespace and connects to its CRI.
// Its lifetime is the runtime's, not a cleanup of its own: shutdown
// needs it to remove the pods first.
func (r *runtime) start(t *testing.T) {
	log, err := os.OpenFile(filepath.Join(r.dir, "containerd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command("nsenter", "--net="+r.node.Path(), "--", "containerd", "--config", filepath.Join(r.dir, "config.toml"))
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.proc = cmd
	conn, err := grpc.NewClient("unix://"+r.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	r.conn, r.rt = conn, runtimeapi.NewRuntimeServiceClient(conn)
	harness.WaitFor(t, "containerd CRI ready", func() bool {
		st, err := r.rt.Status(context.Background(), &runtimeapi.StatusRequest{})
		if err != nil {
			return false
		}
		for _, c := range st.Status.Conditions {
			if c.Type == runtimeapi.RuntimeReady && !c.Status {
				return false
			}
		}
		return true
	})
}

// stop ends containerd (the pods keep running: shims outlive it).
func (r *runtime) stop() {
	r.conn.Close()
	_ = r.proc.Process.Signal(syscall.SIGTERM)
	_ = r.proc.Wait()
}

// shutdown removes the pods through CRI, stops containerd, and then
// makes sure nothing of it is left: processes in the pods' cgroup,
// shims, mounts, pod network namespaces, the state dir.
func (r *runtime) shutdown(t *testing.T) {
	ctx := context.Background()
	if r.proc != nil {
		if l, err := r.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err == nil {
			for _, s := range l.Items {
				_, _ = r.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: s.Id})
				_, _ = r.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: s.Id})
			}
		}
		r.stop()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(r.dir, "containerd.log"))
			t.Logf("containerd log (errors):\n%s", grepErrors(string(b)))
		}
	}
	_ = os.WriteFile(filepath.Join(r.cgroup, "cgroup.kill"), []byte("1"), 0o644)
	_ = exec.Command("pkill", "-KILL", "-f", "containerd-shim.* -address "+r.sock).Run()
	// Overlay and netns mounts must go before the dir can.
	_ = exec.Command("sh", "-c", "grep "+r.dir+" /proc/mounts | cut -d' ' -f2 | sort -r | xargs -r -n1 umount -l").Run()
	_ = os.RemoveAll(r.dir)
}

func grepErrors(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=error") || strings.Contains(l, "level=fatal") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// pod is a running sandbox with one busybox container serving its name
// over HTTP on 8080.
type pod struct {
	name, sandbox, container string
	ips                      []netip.Addr
}

func (r *runtime) runPod(t *testing.T, name, cgroupParent string) *pod {
	ctx := context.Background()
	sbCfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "default", Uid: name + "-uid"},
		Hostname:     name,
		LogDirectory: filepath.Join(r.dir, "logs", name),
		Linux:        &runtimeapi.LinuxPodSandboxConfig{CgroupParent: cgroupParent},
	}
	sb, err := r.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbCfg})
	if err != nil {
		t.Fatalf("run sandbox %s: %v", name, err)
	}
	c, err := r.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb.PodSandboxId, SandboxConfig: sbCfg,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "web"},
			Image:    &runtimeapi.ImageSpec{Image: busyboxRef},
			Command:  []string{"sh", "-c", "echo " + name + " > /www/index.html && exec httpd -f -p 8080 -h /www"},
			LogPath:  "web.log",
		}})
	if err != nil {
		t.Fatalf("create container in %s: %v", name, err)
	}
	if _, err := r.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		t.Fatalf("start container in %s: %v", name, err)
	}
	st, err := r.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb.PodSandboxId})
	if err != nil {
		t.Fatal(err)
	}
	p := &pod{name: name, sandbox: sb.PodSandboxId, container: c.ContainerId}
	for _, s := range append([]string{st.Status.Network.Ip}, ipsOf(st.Status.Network.AdditionalIps)...) {
		a, err := netip.ParseAddr(s)
		if err != nil {
			t.Fatalf("pod %s IP %q: %v", name, s, err)
		}
		p.ips = append(p.ips, a)
	}
	return p
}

func ipsOf(ips []*runtimeapi.PodIP) []string {
	var out []string
	for _, ip := range ips {
		out = append(out, ip.Ip)
	}
	return out
}

// fetch makes an HTTP request from p's container (busybox nc: Debian's
// static busybox wget crashes): the request leaves from the pod, in its
// cgroup (so socket LB applies) and its network namespace. It returns
// the body.
func (r *runtime) fetch(p *pod, to netip.AddrPort) (string, error) {
	req := fmt.Sprintf(`printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 %s %d`, to.Addr(), to.Port())
	resp, err := r.rt.ExecSync(context.Background(), &runtimeapi.ExecSyncRequest{ContainerId: p.container,
		Cmd: []string{"sh", "-c", req}, Timeout: 10})
	if err != nil {
		return "", err
	}
	if resp.ExitCode != 0 {
		return "", fmt.Errorf("request to %s from %s: exit %d: %s", to, p.name, resp.ExitCode, resp.Stderr)
	}
	_, body, ok := strings.Cut(string(resp.Stdout), "\r\n\r\n")
	if !ok {
		return "", fmt.Errorf("request to %s from %s: not an HTTP response: %q", to, p.name, resp.Stdout)
	}
	return strings.TrimSpace(body), nil
}

// exec runs cmd in p's container and returns its output, for diagnostics.
func (r *runtime) exec(p *pod, cmd ...string) string {
	resp, err := r.rt.ExecSync(context.Background(), &runtimeapi.ExecSyncRequest{ContainerId: p.container, Cmd: cmd, Timeout: 10})
	if err != nil {
		return err.Error()
	}
	return string(resp.Stdout) + string(resp.Stderr)
}
