package kubelet

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// upstreamArgs configures the upstream kubelet for this machine (cgroup
// v1 hybrid, cgroupfs, no systemd, no swap check) on the test's
// containerd, serving only inside the node namespace.
func upstreamArgs(t testing.TB, e *env, cgroupRoot string) []string {
	dir := t.TempDir()
	// The upstream kubelet wants its cgroup root in every v1 hierarchy
	// (containerd makes pod cgroups there on demand); a new cpuset needs
	// CPUs and memory nodes before anything can join it.
	ctrls, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, c := range ctrls {
		if filepath.Base(c) == "unified" {
			continue
		}
		p := filepath.Join(c, cgroupRoot)
		if err := os.MkdirAll(p, 0o755); err != nil {
			continue // not a hierarchy
		}
		if filepath.Base(c) == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				if v, err := os.ReadFile(filepath.Join(c, f)); err == nil {
					_ = os.WriteFile(filepath.Join(p, f), v, 0o644)
				}
			}
		}
	}
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: %q
containerRuntimeEndpoint: unix://%s
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
readOnlyPort: 0
failSwapOn: false
enforceNodeAllocatable: []
localStorageCapacityIsolation: false
evictionHard: {memory.available: "1Mi", nodefs.available: "1%%", imagefs.available: "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
resolvConf: /etc/resolv.conf
`, cgroupRoot, e.rt.Sock)
	path := filepath.Join(dir, "kubelet.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	// The kubelet bind-mounts its root dir onto itself.
	root := filepath.Join(dir, "root")
	t.Cleanup(func() { _ = unix.Unmount(root, unix.MNT_DETACH) })
	return []string{"--config", path, "--kubeconfig", e.kubeconfig, "--hostname-override", e.node, "--node-ip", "192.0.2.10",
		"--root-dir", root, "--cert-dir", filepath.Join(dir, "pki"), "--v", "1"}
}

func newBenchEnv(b *testing.B, kind string) *env {
	if kind == "upstream" {
		return newNode(b, true, "", upstreamKubelet())
	}
	return newEnv(b, true, "")
}
