// Package e2e drives the hivelet binary the way a user does, in network
// namespaces and a child cgroup that the tests create.
package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/hivelet/hivelet/test/harness"
)

var hiveletBin string

func TestMain(m *testing.M) {
	bin, cleanup, err := harness.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hiveletBin = bin
	code := m.Run()
	cleanup()
	os.Exit(code)
}

func startAgent(t testing.TB, args ...string) *harness.Agent {
	t.Helper()
	return harness.StartAgent(t, hiveletBin, args...)
}

func backendsOf(t *testing.T, bpffs, frontend string) []string {
	t.Helper()
	return harness.BackendsOf(hiveletBin, bpffs, frontend)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// manifests renders a ClusterIP Service at vip:80 with the given backend
// IPs (port 8080) in one EndpointSlice.
func manifests(vip string, backends ...string) string {
	var eps strings.Builder
	for _, b := range backends {
		fmt.Fprintf(&eps, "\n- addresses: [%s]\n  conditions: {ready: true}", b)
	}
	if len(backends) == 0 {
		eps.WriteString(" []")
	}
	eps.WriteString("\n")
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: web, namespace: e2e}
spec:
  clusterIP: %s
  ports: [{name: http, port: 80, protocol: TCP, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: e2e
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:%s`, vip, eps.String())
}
