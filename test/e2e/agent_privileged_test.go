package e2e

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hivelet/hivelet/test/harness"
	"github.com/hivelet/hivelet/test/testnet"
)

const vip = "10.96.0.10"

var vipPort = netip.MustParseAddrPort(vip + ":80")

// env is a node namespace with three serving pods, a child cgroup the test
// process sits in, a manifests dir and a private bpffs dir.
type env struct {
	node      *testnet.Node
	cgroup    string
	manifests string
	bpffs     string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testnet.RequireRoot(t)
	dir := t.TempDir()
	e := &env{
		node:      testnet.NewNode(t, 3),
		cgroup:    testnet.NewCgroup(t),
		manifests: filepath.Join(dir, "manifests"),
		bpffs:     filepath.Join(dir, "bpffs"),
	}
	for _, p := range e.node.Pods {
		p.Serve(t, 8080)
	}
	if err := os.Mkdir(e.manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		out, err := harness.Run(hiveletBin, "agent", "--cleanup", "--bpffs", e.bpffs, "--cgroup2", e.cgroup)
		if err != nil {
			t.Errorf("hivelet agent --cleanup: %v\n%s", err, out)
		}
	})
	testnet.EnterCgroup(t, e.cgroup)
	return e
}

func (e *env) agentArgs() []string {
	return []string{"--manifests", e.manifests, "--bpffs", e.bpffs, "--cgroup2", e.cgroup, "--sync-period", "2s"}
}

func (e *env) podIPs(idx ...int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, e.node.Pods[i].IPv4.String())
	}
	return out
}

// answers dials the VIP n times from the node namespace and returns the
// sorted set of pod names that answered.
func (e *env) answers(t *testing.T, n int) []string {
	t.Helper()
	return testnet.Answers(t, e.node.NS, vipPort, n)
}

func TestPrivilegedAgentFollowsManifestEdits(t *testing.T) {
	e := newEnv(t)
	file := filepath.Join(e.manifests, "web.yaml")
	writeFile(t, file, manifests(vip, e.podIPs(0, 1)...))
	a := startAgent(t, e.agentArgs()...)
	harness.WaitFor(t, "the service to be programmed", func() bool { return len(backendsOf(t, e.bpffs, vip+":80/TCP")) == 2 })
	if got := e.answers(t, 40); !slices.Equal(got, []string{"pod-1", "pod-2"}) {
		t.Fatalf("answers = %v, want pod-1 and pod-2", got)
	}

	// An entry deleted behind the agent's back is found by the periodic
	// check (--sync-period 2s) and written again.
	ip := netip.MustParseAddr(vip).As4()
	key := []string{"key", "hex"}
	for _, b := range append(ip[:], 0, 80, 0, 0, 6, 0, 0, 0) { // address, port (big endian), slot 0, TCP, scope, pad
		key = append(key, fmt.Sprintf("%02x", b))
	}
	if out, err := exec.Command("bpftool", append([]string{"map", "delete", "pinned", filepath.Join(e.bpffs, "hl_lb4_svc")}, key...)...).CombinedOutput(); err != nil {
		t.Fatalf("bpftool map delete: %v\n%s", err, out)
	}
	harness.WaitFor(t, "the deleted entry to be repaired", func() bool {
		return len(backendsOf(t, e.bpffs, vip+":80/TCP")) == 2 && strings.Contains(a.Log(), "differ from what the agent wrote")
	})

	// The EndpointSlice edit is honoured on the next sync.
	writeFile(t, file, manifests(vip, e.podIPs(1, 2)...))
	harness.WaitFor(t, "the edit to be programmed", func() bool {
		return slices.Equal(backendsOf(t, e.bpffs, vip+":80/TCP"), []string{"10.244.0.12:8080/TCP", "10.244.0.13:8080/TCP"})
	})
	if got := e.answers(t, 40); !slices.Equal(got, []string{"pod-2", "pod-3"}) {
		t.Fatalf("answers after the edit = %v, want pod-2 and pod-3", got)
	}

	// A broken manifest next to it is reported and changes nothing.
	broken := strings.NewReplacer("port: 80,", "port: 80000,", "name: web", "name: broken", "web-1", "broken-1").
		Replace(manifests("10.96.0.11", "10.244.0.11"))
	writeFile(t, filepath.Join(e.manifests, "broken.yaml"), broken)
	harness.WaitFor(t, "the rejection to be logged", func() bool { return strings.Contains(a.Log(), "broken.yaml: Service e2e/broken") })
	if !strings.Contains(a.Log(), "spec.ports[0].port: Invalid value: 80000") {
		t.Errorf("rejection does not name the field:\n%s", a.Log())
	}
	if got := e.answers(t, 20); !slices.Equal(got, []string{"pod-2", "pod-3"}) {
		t.Fatalf("answers after a broken manifest = %v", got)
	}

	// No backends: connections are refused, as kube-proxy's REJECT does.
	writeFile(t, file, manifests(vip))
	harness.WaitFor(t, "the empty service", func() bool {
		b := backendsOf(t, e.bpffs, vip+":80/TCP")
		return b != nil && len(b) == 0
	})
	e.node.NS.Must(t, func() error {
		if _, err := testnet.Dial("tcp", vipPort); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial with no backends: %v, want ECONNREFUSED", err)
		}
		return nil
	})
}

// TestPrivilegedAgentRestartKeepsTraffic kills the agent with SIGKILL and
// starts a new one while a client connects in a loop: no connect may fail
// and connections established before the kill must keep working.
func TestPrivilegedAgentRestartKeepsTraffic(t *testing.T) {
	e := newEnv(t)
	writeFile(t, filepath.Join(e.manifests, "web.yaml"), manifests(vip, e.podIPs(0, 1, 2)...))
	first := startAgent(t, e.agentArgs()...)
	harness.WaitFor(t, "the service to be programmed", func() bool { return len(backendsOf(t, e.bpffs, vip+":80/TCP")) == 3 })
	before, err := harness.ServiceList(hiveletBin, e.bpffs)
	if err != nil {
		t.Fatal(err)
	}

	var established []net.Conn
	e.node.NS.Must(t, func() error {
		for i := 0; i < 6; i++ {
			c, err := net.Dial("tcp", vipPort.String())
			if err != nil {
				return err
			}
			established = append(established, c)
		}
		return nil
	})
	defer func() {
		for _, c := range established {
			c.Close()
		}
	}()

	loop := testnet.StartLoop(e.node.NS, vipPort, 0)
	harness.WaitFor(t, "the client loop to start", func() bool { return loop.OK.Load() > 50 })

	first.Stop(syscall.SIGKILL)
	atKill := loop.OK.Load()
	harness.WaitFor(t, "connects while no agent runs", func() bool { return loop.OK.Load() > atKill+200 })
	second := startAgent(t, e.agentArgs()...)
	harness.WaitFor(t, "the new agent's first sync", func() bool { return strings.Contains(second.Log(), "msg=Synced") })
	atRestart := loop.OK.Load()
	harness.WaitFor(t, "connects after the restart", func() bool { return loop.OK.Load() > atRestart+200 })
	loop.Stop()

	if n := loop.Failed.Load(); n != 0 {
		t.Errorf("%d of %d connects failed across kill and restart; first: %v", n, n+loop.OK.Load(), loop.FirstErr())
	}
	t.Logf("%d connects across SIGKILL and restart, %d failed", loop.OK.Load(), loop.Failed.Load())
	if !strings.Contains(second.Log(), "upserts=0 deletes=0 backends=0") {
		t.Errorf("the restarted agent rewrote the maps:\n%s", second.Log())
	}
	after, err := harness.ServiceList(hiveletBin, e.bpffs)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(before, after, func(a, b harness.ServiceRow) bool {
		return a.ID == b.ID && a.Frontend == b.Frontend && len(a.Backends) == len(b.Backends)
	}) {
		t.Errorf("service list changed across the restart:\n before %+v\n after  %+v", before, after)
	}
	for i, c := range established {
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 16)
		if _, err := c.Read(buf); err != nil { // the greeting
			t.Fatalf("established connection %d: %v", i, err)
		}
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatalf("established connection %d after restart: write: %v", i, err)
		}
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != "ping" {
			t.Fatalf("established connection %d after restart: echo %q, %v", i, buf[:n], err)
		}
	}
}

func TestPrivilegedAgentCleanupRemovesEverything(t *testing.T) {
	e := newEnv(t)
	writeFile(t, filepath.Join(e.manifests, "web.yaml"), manifests(vip, e.podIPs(0)...))
	a := startAgent(t, e.agentArgs()...)
	harness.WaitFor(t, "the service to be programmed", func() bool { return len(backendsOf(t, e.bpffs, vip+":80/TCP")) == 1 })
	a.Stop(syscall.SIGTERM)
	// Stopping the agent leaves the datapath working.
	if got := e.answers(t, 5); !slices.Equal(got, []string{"pod-1"}) {
		t.Fatalf("answers with the agent stopped = %v", got)
	}
	if out, err := harness.Run(hiveletBin, "agent", "--cleanup", "--bpffs", e.bpffs, "--cgroup2", e.cgroup); err != nil {
		t.Fatalf("cleanup: %v\n%s", err, out)
	}
	if _, err := os.Stat(e.bpffs); !os.IsNotExist(err) {
		t.Errorf("bpffs dir still there after cleanup: %v", err)
	}
	// Without the socket LB the VIP is just an unrouted address in this
	// namespace: connect fails locally.
	e.node.NS.Must(t, func() error {
		if _, err := testnet.Dial("tcp", vipPort); !errors.Is(err, syscall.ENETUNREACH) {
			t.Errorf("dial after cleanup: %v, want ENETUNREACH (programs still attached?)", err)
		}
		return nil
	})
	if out, err := harness.Run(hiveletBin, "service", "list", "--bpffs", e.bpffs); err == nil || !strings.Contains(out, "not loaded") {
		t.Errorf("service list after cleanup: %v\n%s", err, out)
	}
}
