// Package cni drives the built hivelet-cni binary the way container
// runtimes do: through libcni (as containerd and CRI-O) and through
// cnitool, with the plugin running in a node namespace the test makes.
package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/hivelet/hivelet/test/harness"
	"github.com/hivelet/hivelet/test/testnet"
)

var binDir string // hivelet, hivelet-cni and cnitool

func TestMain(m *testing.M) {
	os.Exit(harness.BuildMain(m, "hivelet-cni-bin-", map[string]string{
		"hivelet":     "github.com/hivelet/hivelet/cmd/hivelet",
		"hivelet-cni": "github.com/hivelet/hivelet/cmd/hivelet-cni",
		"cnitool":     "github.com/containernetworking/cni/cnitool",
	}, &binDir))
}

// setup is a node namespace with hivelet-cni installed for it by
// `hivelet cni install` into temp dirs.
type setup struct {
	node             *testnet.NS
	confDir, plugins string
	list             *libcni.NetworkConfigList
	cni              *libcni.CNIConfig
}

func newSetup(t testing.TB, extra ...string) *setup {
	return newNodeSetup(t, "10.244.7.0/24,fd00:10:244:7::/64", extra...)
}

// newNodeSetup is newSetup for a node with the given pod CIDRs.
func newNodeSetup(t testing.TB, podCIDRs string, extra ...string) *setup {
	testnet.RequireRoot(t)
	s := &setup{node: testnet.NewNS(t, "cninode"), confDir: t.TempDir(), plugins: t.TempDir()}
	args := append([]string{"cni", "install", "--bin-dir", s.plugins, "--conf-dir", s.confDir,
		"--pod-cidr", podCIDRs, "--plugin", filepath.Join(binDir, "hivelet-cni"), "--cni-version", "1.1.0"}, extra...)
	if out, err := exec.Command(filepath.Join(binDir, "hivelet"), args...).CombinedOutput(); err != nil {
		t.Fatalf("hivelet cni install: %v\n%s", err, out)
	}
	// Addresses go to a store of the test's own, not /var/lib/cni.
	s.rewrite(t, func(p map[string]any) { p["ipam"].(map[string]any)["dataDir"] = t.TempDir() })
	s.cni = libcni.NewCNIConfigWithCacheDir([]string{s.plugins}, t.TempDir(), nil)
	return s
}

func (s *setup) confPath() string { return filepath.Join(s.confDir, "05-hivelet.conflist") }

// rewrite edits the installed conflist's plugin and reloads it.
func (s *setup) rewrite(t testing.TB, edit func(plugin map[string]any)) {
	raw, err := os.ReadFile(s.confPath())
	if err != nil {
		t.Fatal(err)
	}
	var list map[string]any
	if err := json.Unmarshal(raw, &list); err != nil {
		t.Fatal(err)
	}
	edit(list["plugins"].([]any)[0].(map[string]any))
	if raw, err = json.Marshal(list); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.confPath(), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if s.list, err = libcni.ConfListFromFile(s.confPath()); err != nil {
		t.Fatal(err)
	}
}

// inNode runs fn on a thread in the node namespace: the plugin libcni
// forks from there wires the pod's host end into the node, never into
// this machine's own namespace.
func (s *setup) inNode(fn func() error) error { return s.node.Do(fn) }

func rt(id string, pod *testnet.NS) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: id, NetNS: pod.Path(), IfName: "eth0"}
}

func TestPrivilegedLibcniLifecycle(t *testing.T) {
	s := newSetup(t, "--standalone")
	ctx := context.Background()
	a, b := testnet.NewNS(t, "poda"), testnet.NewNS(t, "podb")
	var ra, rb types.Result
	err := s.inNode(func() (err error) {
		if ra, err = s.cni.AddNetworkList(ctx, s.list, rt("ctr-a", a)); err != nil {
			return err
		}
		rb, err = s.cni.AddNetworkList(ctx, s.list, rt("ctr-b", b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	resA, resB := mustCurrent(t, ra), mustCurrent(t, rb)
	if len(resA.IPs) != 2 || resA.IPs[0].Address.String() == resB.IPs[0].Address.String() {
		t.Fatalf("results: %v / %v", resA, resB)
	}
	server := &testnet.Pod{Name: "pod-b", NS: b}
	server.Serve(t, 8080)
	for _, ip := range resB.IPs {
		addr, _ := netip.AddrFromSlice(ip.Address.IP)
		to := netip.AddrPortFrom(addr.Unmap(), 8080)
		a.Must(t, func() error {
			r, err := testnet.Dial("tcp", to)
			if err == nil && r.Name != "pod-b" {
				err = fmt.Errorf("answer from %q", r.Name)
			}
			return err
		})
	}
	if err := s.inNode(func() error { return s.cni.CheckNetworkList(ctx, s.list, rt("ctr-a", a)) }); err != nil {
		t.Fatalf("CHECK: %v", err)
	}
	if err := s.cni.GetStatusNetworkList(ctx, s.list); err != nil {
		t.Fatalf("STATUS of a standalone network: %v", err)
	}
	// GC with only b valid removes a.
	err = s.inNode(func() error {
		return s.cni.GCNetworkList(ctx, s.list, &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: "ctr-b", IfName: "eth0"}}})
	})
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	if out := s.node.IP(t, "-o", "link", "show"); strings.Count(out, "hl") != 1 {
		t.Fatalf("after GC, host links:\n%s", out)
	}
	for i := 0; i < 2; i++ {
		if err := s.inNode(func() error { return s.cni.DelNetworkList(ctx, s.list, rt("ctr-b", b)) }); err != nil {
			t.Fatalf("DEL #%d: %v", i+1, err)
		}
	}
	if out := s.node.IP(t, "-o", "link", "show"); strings.Contains(out, "hl") {
		t.Fatalf("after DEL, host links:\n%s", out)
	}
}

func mustCurrent(t *testing.T, r types.Result) *current.Result {
	t.Helper()
	c, err := current.NewResultFromResult(r)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A runtime that speaks an older CNI version gets its version's result.
func TestPrivilegedVersionNegotiation(t *testing.T) {
	s := newSetup(t, "--standalone")
	ctx := context.Background()
	for _, v := range []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		raw, err := os.ReadFile(s.confPath())
		if err != nil {
			t.Fatal(err)
		}
		list, err := libcni.ConfListFromBytes([]byte(strings.Replace(string(raw), `"cniVersion":"1.1.0"`, `"cniVersion":"`+v+`"`, 1)))
		if err != nil {
			t.Fatal(err)
		}
		pod := testnet.NewNS(t, "pod")
		var res types.Result
		if err := s.inNode(func() (err error) { res, err = s.cni.AddNetworkList(ctx, list, rt("ctr-"+v, pod)); return err }); err != nil {
			t.Fatalf("ADD at %s: %v", v, err)
		}
		if res.Version() != v {
			t.Errorf("ADD at %s returned a %s result", v, res.Version())
		}
		if err := s.inNode(func() error { return s.cni.DelNetworkList(ctx, list, rt("ctr-"+v, pod)) }); err != nil {
			t.Fatalf("DEL at %s: %v", v, err)
		}
	}
}

// STATUS follows the agent: not ready before `hivelet agent` has loaded
// its datapath, ready once it has.
func TestPrivilegedStatusFollowsTheAgent(t *testing.T) {
	bpffs := filepath.Join(t.TempDir(), "bpffs")
	s := newSetup(t, "--bpffs", bpffs)
	ctx := context.Background()
	err := s.cni.GetStatusNetworkList(ctx, s.list)
	var e *types.Error
	if !errors.As(err, &e) || e.Code != types.ErrPluginNotAvailable {
		t.Fatalf("STATUS without an agent: %v", err)
	}
	manifests := t.TempDir()
	a := harness.StartAgent(t, filepath.Join(binDir, "hivelet"), "--manifests", manifests, "--bpffs", bpffs, "--cgroup2", testnet.NewCgroup(t))
	t.Cleanup(func() { _, _ = harness.Run(filepath.Join(binDir, "hivelet"), "agent", "--cleanup", "--bpffs", bpffs) })
	harness.WaitFor(t, "agent synced", func() bool { return strings.Contains(a.Log(), "msg=Synced") })
	if err := s.cni.GetStatusNetworkList(ctx, s.list); err != nil {
		t.Fatalf("STATUS with the agent running: %v", err)
	}
}

// cnitool, the CNI project's own runtime stand-in, adds and deletes.
func TestPrivilegedCnitool(t *testing.T) {
	s := newSetup(t, "--standalone")
	pod := testnet.NewNS(t, "pod")
	for _, op := range []string{"add", "check", "del", "del"} {
		out, err := s.cnitool(op, "hivelet", pod)
		if err != nil {
			t.Fatalf("cnitool %s: %v\n%s", op, err, out)
		}
		if op == "add" && !strings.Contains(out, `"10.244.7.`) {
			t.Fatalf("cnitool add printed:\n%s", out)
		}
	}
	if out := s.node.IP(t, "-o", "link", "show"); strings.Contains(out, "hl") {
		t.Fatalf("after cnitool del, host links:\n%s", out)
	}
}

// cnitool runs `cnitool op net pod` in the node namespace.
func (s *setup) cnitool(op, network string, pod *testnet.NS) (string, error) {
	cmd := exec.Command("nsenter", "--net="+s.node.Path(), "--", filepath.Join(binDir, "cnitool"), op, network, pod.Path())
	cmd.Env = append(os.Environ(), "CNI_PATH="+s.plugins+":/usr/lib/cni", "NETCONFPATH="+s.confDir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
