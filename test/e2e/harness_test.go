// Package e2e drives the hivelet binary the way a user does, in network
// namespaces and a child cgroup that the tests create.
package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var hiveletBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hivelet-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hiveletBin = filepath.Join(dir, "hivelet")
	build := exec.Command("go", "build", "-o", hiveletBin, "github.com/hivelet/hivelet/cmd/hivelet")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build hivelet:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// agent is a running `hivelet agent` process.
type agent struct {
	cmd *exec.Cmd
	log string
}

func startAgent(t *testing.T, args ...string) *agent {
	t.Helper()
	return startAgentB(t, args...)
}

// startAgentB starts an agent for a test or a benchmark.
func startAgentB(t testing.TB, args ...string) *agent {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "agent.log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(hiveletBin, append([]string{"agent"}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	a := &agent{cmd: cmd, log: logPath}
	t.Cleanup(func() {
		a.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("agent log:\n%s", a.logText())
		}
	})
	return a
}

func (a *agent) logText() string {
	b, _ := os.ReadFile(a.log)
	return string(b)
}

// exited reports whether the agent process has ended.
func (a *agent) exited() bool {
	return a.cmd.ProcessState != nil || a.cmd.Process.Signal(syscall.Signal(0)) != nil
}

// stop signals the agent and reaps it (PID 1 here does not reap orphans).
func (a *agent) stop(sig syscall.Signal) {
	if a.cmd.ProcessState != nil {
		return
	}
	_ = a.cmd.Process.Signal(sig)
	_ = a.cmd.Wait()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serviceRow mirrors `hivelet service list -o json`.
type serviceRow struct {
	ID       uint32 `json:"id"`
	Frontend string `json:"frontend"`
	Type     string `json:"type"`
	Backends []struct {
		ID      uint32 `json:"id"`
		Address string `json:"address"`
	} `json:"backends"`
	Problem string `json:"problem"`
}

func serviceList(t *testing.T, bpffs string) ([]serviceRow, error) {
	t.Helper()
	out, err := exec.Command(hiveletBin, "service", "list", "-o", "json", "--bpffs", bpffs).Output()
	if err != nil {
		return nil, fmt.Errorf("service list: %w", err)
	}
	var rows []serviceRow
	if err := json.Unmarshal(out, &rows); err != nil {
		return nil, fmt.Errorf("service list output %q: %w", out, err)
	}
	return rows, nil
}

// backendsOf returns the backend addresses `service list` shows for a
// frontend ("10.96.0.10:80/TCP"), or nil when it is not programmed.
func backendsOf(t *testing.T, bpffs, frontend string) []string {
	t.Helper()
	rows, err := serviceList(t, bpffs)
	if err != nil {
		return nil
	}
	for _, r := range rows {
		if r.Frontend == frontend {
			out := []string{}
			for _, b := range r.Backends {
				out = append(out, b.Address)
			}
			return out
		}
	}
	return nil
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

// run executes a command and returns its combined output.
func run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
