// Package k8s tests the agent against a real kube-apiserver and etcd,
// started on loopback by hack/k8s.sh: objects are written through the API
// and the pinned maps and the traffic in test namespaces must follow.
package k8s

import (
	"fmt"
	"os"
	"testing"

	"k8s.io/client-go/kubernetes"

	"github.com/hivelet/hivelet/test/harness"
)

var (
	hiveletBin string
	kubeconfig string
	client     kubernetes.Interface
)

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

// setup starts (or reuses) the loopback control plane and builds the agent.
func setup() (func(), error) {
	var err error
	if client, kubeconfig, err = harness.K8sUp(50); err != nil {
		return nil, err
	}
	bin, cleanup, err := harness.Build()
	hiveletBin = bin
	return cleanup, err
}
