// Package containerd runs Debian's containerd 1.6 + runc for tests: in a
// node network namespace the test makes, with its own state directory and
// socket, hivelet-cni as its CNI plugin, and images built from
// busybox-static imported so nothing is pulled.
package containerd

import (
	"context"
	"fmt"
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
	BusyboxRef = "hivelet.test/busybox:1"
	PauseRef   = "hivelet.test/pause:1"
)

// Runtime is a containerd serving CRI on a socket of its own, running in
// the node namespace, using hivelet-cni.
type Runtime struct {
	Dir, Sock, CNIBin, CNIConf, CNIData string
	Cgroup                              string // pods' cgroup parent (v2 path)
	Node                                *testnet.NS
	RT                                  runtimeapi.RuntimeServiceClient
	proc                                *exec.Cmd
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
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %[7]q
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
`

// New starts a containerd for the test, with hivelet-cni from binDir
// (which holds hivelet and hivelet-cni) installed as its CNI plugin and
// pods' cgroups under cgroup; it is shut down, pods first, at cleanup.
func New(t testing.TB, binDir, cgroup string) *Runtime {
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
	r := &Runtime{Dir: dir, Sock: filepath.Join(dir, "c.sock"), CNIBin: filepath.Join(dir, "cni-bin"),
		CNIConf: filepath.Join(dir, "net.d"), CNIData: filepath.Join(dir, "ipam"), Node: testnet.NewNS(t, "crinode"), Cgroup: cgroup}
	if out, err := exec.Command(filepath.Join(binDir, "hivelet"), "cni", "install", "--bin-dir", r.CNIBin, "--conf-dir", r.CNIConf,
		"--pod-cidr", "10.244.9.0/24,fd00:10:244:9::/64", "--plugin", filepath.Join(binDir, "hivelet-cni"), "--standalone").CombinedOutput(); err != nil {
		t.Fatalf("hivelet cni install: %v\n%s", err, out)
	}
	// containerd 1.6 also runs the reference loopback plugin for every
	// pod, from the same bin dir, as real nodes have it.
	if err := os.Symlink("/usr/lib/cni/loopback", filepath.Join(r.CNIBin, "loopback")); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(r.CNIConf, "05-hivelet.conflist")
	raw, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	// The test's own address store, not /var/lib/cni.
	raw = []byte(strings.Replace(string(raw), `"ipam": {`, fmt.Sprintf(`"ipam": {"dataDir": %q,`, r.CNIData), 1))
	if err := os.WriteFile(conf, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, containerdConfig, filepath.Join(dir, "root"), filepath.Join(dir, "state"),
		r.Sock, PauseRef, r.CNIBin, r.CNIConf, r.registryHosts()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown(t) })
	r.Start(t)
	for ref, cmd := range map[string][]string{BusyboxRef: {"sh"}, PauseRef: {"sleep", "2147483647"}} {
		r.Import(t, ref, cmd)
	}
	return r
}

// Import builds a busybox image named ref whose command is cmd and
// imports it into containerd's CRI namespace.
func (r *Runtime) Import(t testing.TB, ref string, cmd []string) {
	t.Helper()
	archive := filepath.Join(r.Dir, strings.NewReplacer("/", "_", ":", "_").Replace(ref)+".tar")
	if err := images.BuildBusybox(archive, ref, cmd); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ctr", "--address", r.Sock, "-n", "k8s.io", "images", "import", archive).CombinedOutput(); err != nil {
		t.Fatalf("ctr images import %s: %v\n%s", ref, err, out)
	}
}

func (r *Runtime) registryHosts() string { return filepath.Join(r.Dir, "certs.d") }

// AllowPlainHTTP makes containerd pull from host ("127.0.0.1:5000") over
// plain HTTP, as a registry on loopback is served. containerd reads the
// hosts file at every pull: no restart.
func (r *Runtime) AllowPlainHTTP(t testing.TB, host string) {
	t.Helper()
	dir := filepath.Join(r.registryHosts(), host)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	hosts := fmt.Sprintf("server = %[1]q\n[host.%[1]q]\n  capabilities = [\"pull\", \"resolve\"]\n", "http://"+host)
	if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(hosts), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Start runs containerd in the node namespace and connects to its CRI.
// Its lifetime is the Runtime's, not a cleanup of its own: shutdown
// needs it to remove the pods first.
func (r *Runtime) Start(t testing.TB) {
	log, err := os.OpenFile(filepath.Join(r.Dir, "containerd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command("nsenter", "--net="+r.Node.Path(), "--", "containerd", "--config", filepath.Join(r.Dir, "config.toml"))
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.proc = cmd
	conn, err := grpc.NewClient("unix://"+r.Sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	r.conn, r.RT = conn, runtimeapi.NewRuntimeServiceClient(conn)
	harness.WaitFor(t, "containerd CRI ready", func() bool {
		st, err := r.RT.Status(context.Background(), &runtimeapi.StatusRequest{})
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

// Stop ends containerd (the pods keep running: shims outlive it).
func (r *Runtime) Stop() {
	r.conn.Close()
	_ = r.proc.Process.Signal(syscall.SIGTERM)
	_ = r.proc.Wait()
}

// Shutdown removes the pods through CRI, stops containerd, and then
// makes sure nothing of it is left: processes in the pods' cgroup,
// shims, mounts, pod network namespaces, the state dir.
func (r *Runtime) Shutdown(t testing.TB) {
	ctx := context.Background()
	if r.proc != nil {
		if l, err := r.RT.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err == nil {
			for _, s := range l.Items {
				_, _ = r.RT.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: s.Id})
				_, _ = r.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: s.Id})
			}
		}
		r.Stop()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(r.Dir, "containerd.log"))
			t.Logf("containerd log (errors):\n%s", grepErrors(string(b)))
		}
	}
	_ = os.WriteFile(filepath.Join(r.Cgroup, "cgroup.kill"), []byte("1"), 0o644)
	_ = exec.Command("pkill", "-KILL", "-f", "containerd-shim.* -address "+r.Sock).Run()
	// Overlay and netns mounts must go before the dir can.
	_ = exec.Command("sh", "-c", "grep "+r.Dir+" /proc/mounts | cut -d' ' -f2 | sort -r | xargs -r -n1 umount -l").Run()
	_ = os.RemoveAll(r.Dir)
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

// V1Cleanup removes, at cleanup, what runc leaves of a pod cgroup parent
// named name in the v1 hierarchies (containerd never removes pod cgroup
// directories).
func V1Cleanup(t testing.TB, name string) {
	t.Cleanup(func() {
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + name)
		for _, d := range dirs {
			_ = exec.Command("find", d, "-depth", "-type", "d", "-exec", "rmdir", "{}", ";").Run()
		}
	})
}

// ImageRefs lists the repo tags of containerd's CRI images.
func (r *Runtime) ImageRefs(t testing.TB) []string {
	t.Helper()
	resp, err := runtimeapi.NewImageServiceClient(r.conn).ListImages(context.Background(), &runtimeapi.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, img := range resp.Images {
		refs = append(refs, img.RepoTags...)
	}
	return refs
}
