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
	"path/filepath"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hivelet/hivelet/test/containerd"
	"github.com/hivelet/hivelet/test/harness"
)

var binDir string // hivelet and hivelet-cni

func TestMain(m *testing.M) {
	os.Exit(harness.BuildMain(m, "hivelet-cri-bin-", map[string]string{
		"hivelet":     "github.com/hivelet/hivelet/cmd/hivelet",
		"hivelet-cni": "github.com/hivelet/hivelet/cmd/hivelet-cni",
	}, &binDir))
}

// runtime is the shared test containerd with this package's helpers.
type runtime struct{ *containerd.Runtime }

func newRuntime(t *testing.T, cgroup string) *runtime {
	return &runtime{containerd.New(t, binDir, cgroup)}
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
		LogDirectory: filepath.Join(r.Dir, "logs", name),
		Linux:        &runtimeapi.LinuxPodSandboxConfig{CgroupParent: cgroupParent},
	}
	sb, err := r.RT.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbCfg})
	if err != nil {
		t.Fatalf("run sandbox %s: %v", name, err)
	}
	c, err := r.RT.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb.PodSandboxId, SandboxConfig: sbCfg,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "web"},
			Image:    &runtimeapi.ImageSpec{Image: containerd.BusyboxRef},
			Command:  []string{"sh", "-c", "echo " + name + " > /www/index.html && exec httpd -f -p 8080 -h /www"},
			LogPath:  "web.log",
		}})
	if err != nil {
		t.Fatalf("create container in %s: %v", name, err)
	}
	if _, err := r.RT.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		t.Fatalf("start container in %s: %v", name, err)
	}
	st, err := r.RT.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb.PodSandboxId})
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
	resp, err := r.RT.ExecSync(context.Background(), &runtimeapi.ExecSyncRequest{ContainerId: p.container,
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
	resp, err := r.RT.ExecSync(context.Background(), &runtimeapi.ExecSyncRequest{ContainerId: p.container, Cmd: cmd, Timeout: 10})
	if err != nil {
		return err.Error()
	}
	return string(resp.Stdout) + string(resp.Stderr)
}
