// Package harness runs the hivelet binary the way a user does, for the
// end-to-end and Kubernetes test tiers: build it, start agents, read
// `hivelet service list`, wait for conditions.
package harness

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Build compiles cmd/hivelet into a temp dir and returns the binary's path
// and a cleanup function. Call it from TestMain.
func Build() (string, func(), error) {
	dir, err := os.MkdirTemp("", "hivelet-bin-")
	if err != nil {
		return "", nil, err
	}
	bin, err := GoBuild(dir, "hivelet", "github.com/hivelet/hivelet/cmd/hivelet")
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}

// GoBuild compiles pkg (a main package of this module or of one it
// requires) to dir/name.
func GoBuild(dir, name, pkg string) (string, error) {
	bin := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, err)
	}
	return bin, nil
}

// Agent is a running `hivelet agent` process (or another process a test
// started with Start).
type Agent struct {
	Cmd *exec.Cmd
	log string
}

// StartAgent starts `bin agent args...`, logging to a temp file; at
// cleanup the agent gets SIGTERM and is reaped, and its log is shown if
// the test failed. Unless args say otherwise, healthz and metrics listen
// on free loopback ports (see Agent.Addr), never on the machine's
// interfaces, and no TC program is attached (--devices none): the agent
// may run in the machine's own namespace, whose devices are not the
// test's to touch.
func StartAgent(t testing.TB, bin string, args ...string) *Agent {
	t.Helper()
	for _, flag := range []string{"--healthz-bind-address", "--metrics-bind-address"} {
		if !slices.Contains(args, flag) {
			args = append(args, flag, "127.0.0.1:0")
		}
	}
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--devices") }) {
		args = append(args, "--devices", "none")
	}
	return Start(t, exec.Command(bin, append([]string{"agent"}, args...)...))
}

// Start runs cmd with its output in a temp log file, the way StartAgent
// does, for any long-running process a test drives (kube-proxy too).
func Start(t testing.TB, cmd *exec.Cmd) *Agent {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), filepath.Base(cmd.Path)+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	a := &Agent{Cmd: cmd, log: logPath}
	t.Cleanup(func() {
		a.Stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("%s log:\n%s", filepath.Base(cmd.Path), a.Log())
		}
	})
	return a
}

// Addr returns the address the agent serves what ("healthz" or
// "metrics") on, from its log; empty until it logged it.
func (a *Agent) Addr(what string) string {
	m := regexp.MustCompile(`msg="Serving ` + what + `" addr=(\S+)`).FindStringSubmatch(a.Log())
	if m == nil {
		return ""
	}
	return m[1]
}

// Get fetches http://addr/path and returns the status code and body.
func Get(addr, path string) (int, string, error) {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// Metric returns the value of a sample line of a Prometheus text page
// ("name" or "name{labels}"), or -1 when absent.
func Metric(page, sample string) float64 {
	for _, line := range strings.Split(page, "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// Log returns everything the agent logged so far.
func (a *Agent) Log() string {
	b, _ := os.ReadFile(a.log)
	return string(b)
}

// Exited reports whether the agent process has ended.
func (a *Agent) Exited() bool {
	return a.Cmd.ProcessState != nil || a.Cmd.Process.Signal(syscall.Signal(0)) != nil
}

// Stop signals the agent and reaps it (PID 1 here does not reap orphans).
func (a *Agent) Stop(sig syscall.Signal) {
	if a.Cmd.ProcessState != nil {
		return
	}
	_ = a.Cmd.Process.Signal(sig)
	_ = a.Cmd.Wait()
}

// WaitFor polls cond until it holds, failing the test after 20 s.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ServiceRow mirrors one entry of `hivelet service list -o json`.
type ServiceRow struct {
	ID       uint32 `json:"id"`
	Frontend string `json:"frontend"`
	Type     string `json:"type"`
	Backends []struct {
		ID      uint32 `json:"id"`
		Address string `json:"address"`
	} `json:"backends"`
	Problem string `json:"problem"`
}

// ServiceList runs `bin service list -o json --bpffs bpffs`.
func ServiceList(bin, bpffs string) ([]ServiceRow, error) {
	out, err := exec.Command(bin, "service", "list", "-o", "json", "--bpffs", bpffs).Output()
	if err != nil {
		return nil, fmt.Errorf("service list: %w", err)
	}
	var rows []ServiceRow
	if err := json.Unmarshal(out, &rows); err != nil {
		return nil, fmt.Errorf("service list output %q: %w", out, err)
	}
	return rows, nil
}

// BackendsOf returns the backend addresses `service list` shows for a
// frontend ("10.96.0.10:80/TCP"), or nil when it is not programmed.
func BackendsOf(bin, bpffs, frontend string) []string {
	rows, err := ServiceList(bin, bpffs)
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

// Run executes a command and returns its combined output.
func Run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// RSSMiB returns a process's resident set size in MiB.
func RSSMiB(pid int) (float64, error) {
	return statusMiB(pid, "VmRSS")
}

// RSSPartsMiB splits a process's resident memory into anonymous pages
// (heap, stacks) and file-backed ones (the binary's code and data as far
// as they were touched).
func RSSPartsMiB(pid int) (anon, file float64, err error) {
	if anon, err = statusMiB(pid, "RssAnon"); err != nil {
		return 0, 0, err
	}
	file, err = statusMiB(pid, "RssFile")
	return anon, file, err
}

// statusMiB reads one kB field of /proc/PID/status.
func statusMiB(pid int, field string) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return float64(kb) / 1024, err
		}
	}
	return 0, fmt.Errorf("no %s for pid %d", field, pid)
}

// BuildMain builds the named main packages (file name → package) into one
// temp dir, runs the tests with that dir, removes it and returns the exit
// code: the whole TestMain of a package that drives several binaries.
func BuildMain(m interface{ Run() int }, tmpPrefix string, mains map[string]string, dir *string) int {
	d, err := os.MkdirTemp("", tmpPrefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(d)
	for name, pkg := range mains {
		if _, err := GoBuild(d, name, pkg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	*dir = d
	return m.Run()
}

// Tail is the last n lines of s (a process log in a failure message).
func Tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
