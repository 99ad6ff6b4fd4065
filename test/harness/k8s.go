package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func k8sScript() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "hack", "k8s.sh")
}

// K8sUp starts (or reuses) the loopback control plane of hack/k8s.sh and
// returns a client for it and its kubeconfig path. It stays up afterwards:
// `hack/k8s.sh down` stops it. env adds variables such as HIVELET_K8S_DATA
// and the ports, for a control plane of its own.
func K8sUp(qps float32, env ...string) (kubernetes.Interface, string, error) {
	up := exec.Command(k8sScript(), "up")
	up.Env = append(os.Environ(), env...)
	up.Stderr = os.Stderr
	out, err := up.Output()
	if err != nil {
		return nil, "", fmt.Errorf("hack/k8s.sh up: %w", err)
	}
	kubeconfig := strings.TrimSpace(string(out))
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, "", err
	}
	cfg.QPS, cfg.Burst = qps, int(2*qps)
	// Protobuf: the API server spends far less CPU on it than on JSON,
	// which matters when a benchmark creates 100k objects.
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	client, err := kubernetes.NewForConfig(cfg)
	return client, kubeconfig, err
}

// K8sDown stops the control plane K8sUp started with the same env.
func K8sDown(env ...string) error {
	down := exec.Command(k8sScript(), "down")
	down.Env = append(os.Environ(), env...)
	out, err := down.CombinedOutput()
	if err != nil {
		return fmt.Errorf("hack/k8s.sh down: %w\n%s", err, out)
	}
	return nil
}

// KubeProxyBin is the upstream kube-proxy hack/k8s.sh builds (in
// HIVELET_K8S_CACHE, /var/cache/hivelet-k8s by default).
func KubeProxyBin() string {
	dir := os.Getenv("HIVELET_K8S_CACHE")
	if dir == "" {
		dir = "/var/cache/hivelet-k8s"
	}
	return filepath.Join(dir, "bin", "kube-proxy")
}
