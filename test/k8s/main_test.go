// Package k8s tests the agent against a real kube-apiserver and etcd,
// started on loopback by hack/k8s.sh: objects are written through the API
// and the pinned maps and the traffic in test namespaces must follow.
package k8s

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hivelet/hivelet/test/harness"
)

var (
	hiveletBin string
	kubeconfig string
	client     kubernetes.Interface
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func TestMain(m *testing.M) {
	cleanup, err := setup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8s tests:", err)
		os.Exit(1)
	}
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// setup starts (or reuses) the loopback control plane; it stays up for the
// next run, as `hack/k8s.sh down` is what stops it.
func setup() (func(), error) {
	up := exec.Command(filepath.Join(repoRoot(), "hack", "k8s.sh"), "up")
	up.Stderr = os.Stderr
	out, err := up.Output()
	if err != nil {
		return nil, fmt.Errorf("hack/k8s.sh up: %w", err)
	}
	kubeconfig = strings.TrimSpace(string(out))
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	if client, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, err
	}
	bin, cleanup, err := harness.Build()
	hiveletBin = bin
	return cleanup, err
}
