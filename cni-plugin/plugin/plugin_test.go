package plugin

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/hivelet/hivelet/cni-plugin/config"
	"github.com/hivelet/hivelet/cni-plugin/ipam"
	"github.com/hivelet/hivelet/cni-plugin/link"
	"github.com/hivelet/hivelet/test/testnet"
)

// node is a namespace standing in for a node's host network, where the
// plugin runs, with an address store of its own.
type node struct {
	ns   *testnet.NS
	data string
	v4   string // pod range
}

func newNode(t *testing.T, v4 string) *node {
	testnet.RequireRoot(t)
	return &node{ns: testnet.NewNS(t, "cninode"), data: t.TempDir(), v4: v4}
}

func (n *node) conf(extra string) []byte {
	return []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"podnet","type":"hivelet-cni","standalone":true,%s
		"ipam":{"dataDir":%q,"ranges":[[{"subnet":%q}],[{"subnet":"fd00:10:244::/120"}]]}}`, extra, n.data, n.v4))
}

func (n *node) args(id string, pod *testnet.NS, stdin []byte) *skel.CmdArgs {
	return &skel.CmdArgs{ContainerID: id, Netns: pod.Path(), IfName: "eth0", StdinData: stdin}
}

// add runs ADD the way the binary does (parse, then add) in the node.
func (n *node) add(id string, pod *testnet.NS) (*current.Result, error) {
	var res *current.Result
	err := n.ns.Do(func() error {
		args := n.args(id, pod, n.conf(""))
		c, err := config.Parse(args.StdinData, args.Args)
		if err != nil {
			return err
		}
		res, err = add(c, args)
		return err
	})
	return res, err
}

func (n *node) del(id string, pod *testnet.NS) error {
	return n.ns.Do(func() error { return Del(n.args(id, pod, n.conf(""))) })
}

func (n *node) hostLinks(t *testing.T) []string {
	var names []string
	n.ns.Must(t, func() error {
		ls, err := netlink.LinkList()
		for _, l := range ls {
			if strings.HasPrefix(l.Attrs().Name, link.HostPrefix) {
				names = append(names, l.Attrs().Name)
			}
		}
		return err
	})
	return names
}

// held lists the addresses the store holds for anyone.
func (n *node) held(t *testing.T) []string {
	ents, err := os.ReadDir(filepath.Join(n.data, "podnet"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var ips []string
	for _, e := range ents {
		if _, err := netip.ParseAddr(e.Name()); err == nil {
			ips = append(ips, e.Name())
		}
	}
	return ips
}

func podIP(t *testing.T, res *current.Result, v6 bool) netip.Addr {
	t.Helper()
	for _, ip := range res.IPs {
		a, _ := netip.AddrFromSlice(ip.Address.IP)
		if a = a.Unmap(); a.Is6() == v6 {
			return a
		}
	}
	t.Fatalf("no IPv6=%v address in %v", v6, res)
	return netip.Addr{}
}

func TestPrivilegedAddWiresPodsThatReachEachOther(t *testing.T) {
	n := newNode(t, "10.244.0.0/24")
	a, b := testnet.NewNS(t, "poda"), testnet.NewNS(t, "podb")
	ra, err := n.add("ctr-a", a)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := n.add("ctr-b", b)
	if err != nil {
		t.Fatal(err)
	}
	if len(ra.IPs) != 2 || len(ra.Routes) != 2 || len(ra.Interfaces) != 2 || ra.Interfaces[1].Sandbox != a.Path() {
		t.Fatalf("result: %+v", ra)
	}
	if podIP(t, ra, false) == podIP(t, rb, false) || podIP(t, ra, true) == podIP(t, rb, true) {
		t.Fatalf("pods share an address: %v %v", ra.IPs, rb.IPs)
	}
	server := &testnet.Pod{Name: "pod-b", NS: b}
	server.Serve(t, 8080)
	for _, v6 := range []bool{false, true} {
		to := netip.AddrPortFrom(podIP(t, rb, v6), 8080)
		a.Must(t, func() error {
			r, err := testnet.Dial("tcp", to)
			if err != nil {
				return fmt.Errorf("pod a to %s: %w", to, err)
			}
			if r.Name != "pod-b" {
				return fmt.Errorf("answer from %q", r.Name)
			}
			return nil
		})
	}
	// The pod's MTU and routes are as configured.
	a.Must(t, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if l.Attrs().MTU != config.DefaultMTU {
			return fmt.Errorf("pod MTU %d", l.Attrs().MTU)
		}
		return nil
	})
}

func TestPrivilegedDelFreesEverythingAndRepeats(t *testing.T) {
	n := newNode(t, "10.244.0.0/24")
	pod := testnet.NewNS(t, "pod")
	if _, err := n.add("ctr", pod); err != nil {
		t.Fatal(err)
	}
	if got := n.held(t); len(got) != 2 {
		t.Fatalf("held after ADD: %v", got)
	}
	for i := 0; i < 2; i++ {
		if err := n.del("ctr", pod); err != nil {
			t.Fatalf("DEL #%d: %v", i+1, err)
		}
		if l, h := n.hostLinks(t), n.held(t); len(l) != 0 || len(h) != 0 {
			t.Fatalf("after DEL #%d: links %v, addresses %v", i+1, l, h)
		}
	}
	// DEL after the netns is gone (a reboot, a crashed runtime).
	gone := testnet.NewNS(t, "gone")
	if _, err := n.add("ctr2", gone); err != nil {
		t.Fatal(err)
	}
	testnet.Run(t, "ip", "netns", "del", gone.Name)
	if err := n.del("ctr2", gone); err != nil {
		t.Fatalf("DEL with the netns gone: %v", err)
	}
	if l, h := n.hostLinks(t), n.held(t); len(l) != 0 || len(h) != 0 {
		t.Fatalf("after DEL with the netns gone: links %v, addresses %v", l, h)
	}
}

func TestPrivilegedCheck(t *testing.T) {
	n := newNode(t, "10.244.0.0/24")
	pod := testnet.NewNS(t, "pod")
	res, err := n.add("ctr", pod)
	if err != nil {
		t.Fatal(err)
	}
	raw := string(n.conf(""))
	out, err := res.GetAsVersion("1.1.0")
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	if err := out.PrintTo(&sb); err != nil {
		t.Fatal(err)
	}
	withPrev := []byte(strings.Replace(raw, `"standalone":true,`, `"standalone":true,"prevResult":`+sb.String()+`,`, 1))
	check := func() error { return n.ns.Do(func() error { return Check(n.args("ctr", pod, withPrev)) }) }
	if err := check(); err != nil {
		t.Fatalf("CHECK of a healthy pod: %v", err)
	}
	pod.IP(t, "addr", "flush", "dev", "eth0")
	if err := check(); err == nil || !strings.Contains(err.Error(), "lacks address") {
		t.Fatalf("CHECK after the pod lost its addresses: %v", err)
	}
}

// cniCode returns the CNI error code of err, or 0.
func cniCode(err error) uint {
	var e *types.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

func TestPrivilegedAddErrorsLeaveNothing(t *testing.T) {
	// A /29 has 5 usable addresses once host-local keeps the network,
	// the gateway (.1) and the broadcast address.
	n := newNode(t, "10.244.0.0/29")
	var pods []*testnet.NS
	for i := 0; i < 5; i++ {
		p := testnet.NewNS(t, "pod")
		if _, err := n.add(fmt.Sprintf("ctr-%d", i), p); err != nil {
			t.Fatal(err)
		}
		pods = append(pods, p)
	}
	before, links := n.held(t), n.hostLinks(t)

	extra := testnet.NewNS(t, "pod")
	_, err := n.add("ctr-full", extra)
	if cniCode(err) != config.ErrPoolExhausted || !strings.Contains(err.Error(), "10.244.0.0/29") {
		t.Errorf("ADD to a full range: %v (code %d)", err, cniCode(err))
	}
	_, err = n.add("ctr-nons", &testnet.NS{Name: "no-such-netns"})
	if cniCode(err) != types.ErrUnknownContainer {
		t.Errorf("ADD with a missing netns: %v (code %d)", err, cniCode(err))
	}
	if err := n.del("ctr-4", pods[4]); err != nil {
		t.Fatal(err)
	}
	extra.IP(t, "link", "add", "eth0", "type", "veth", "peer", "name", "other")
	_, err = n.add("ctr-clash", extra)
	if cniCode(err) != config.ErrNameClash {
		t.Errorf("ADD where eth0 exists: %v (code %d)", err, cniCode(err))
	}
	// The failed ADDs hold nothing: the freed address is still free.
	if h := n.held(t); len(h) != len(before)-2 {
		t.Errorf("addresses after failed ADDs: %v, want %d", h, len(before)-2)
	}
	if l := n.hostLinks(t); len(l) != len(links)-1 {
		t.Errorf("host links after failed ADDs: %v", l)
	}

	bad := []struct {
		stdin string
		code  uint
		says  string
	}{
		{`{"cniVersion":"1.1.0",`, types.ErrDecodingFailure, "invalid JSON"},
		{`{"cniVersion":"1.1.0","name":"x","mtu":"big","ipam":{"ranges":[[{"subnet":"10.0.0.0/24"}]]}}`, types.ErrDecodingFailure, "field mtu: got a JSON string, want a number"},
		{`{"cniVersion":"1.1.0","name":"x","mtu":100,"ipam":{"ranges":[[{"subnet":"10.0.0.0/24"}]]}}`, types.ErrInvalidNetworkConfig, "mtu: 100 is out of range"},
		{`{"cniVersion":"1.1.0","name":"x","ipam":{}}`, types.ErrInvalidNetworkConfig, "no IP ranges"},
		{`{"cniVersion":"1.1.0","name":"x","ipam":{"type":"dhcp"}}`, types.ErrInvalidNetworkConfig, `ipam.type: "dhcp" is not supported`},
		{`{"cniVersion":"1.1.0","ipam":{"ranges":[[{"subnet":"10.0.0.0/24"}]]}}`, types.ErrInvalidNetworkConfig, "name: missing"},
	}
	for _, b := range bad {
		err := n.ns.Do(func() error { return Add(n.args("ctr-bad", extra, []byte(b.stdin))) })
		if cniCode(err) != b.code || !strings.Contains(err.Error(), b.says) {
			t.Errorf("ADD with %s: %v (code %d), want code %d saying %q", b.stdin, err, cniCode(err), b.code, b.says)
		}
	}
}

func TestPrivilegedParallelAddsGetUniqueAddresses(t *testing.T) {
	n := newNode(t, "10.244.0.0/24")
	const pods = 50
	nss := make([]*testnet.NS, pods)
	for i := range nss {
		nss[i] = testnet.NewNS(t, "pod")
	}
	results := make([]*current.Result, pods)
	var wg sync.WaitGroup
	errs := make(chan error, pods)
	for i := range nss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := n.add(fmt.Sprintf("ctr-%d", i), nss[i])
			results[i] = r
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[netip.Addr]int{}
	for i, r := range results {
		for _, v6 := range []bool{false, true} {
			ip := podIP(t, r, v6)
			if j, dup := seen[ip]; dup {
				t.Fatalf("pods %d and %d both got %s", j, i, ip)
			}
			seen[ip] = i
		}
	}
	for i := range nss {
		if err := n.del(fmt.Sprintf("ctr-%d", i), nss[i]); err != nil {
			t.Fatal(err)
		}
	}
	if l, h := n.hostLinks(t), n.held(t); len(l) != 0 || len(h) != 0 {
		t.Fatalf("after DEL of all: links %v, addresses %v", l, h)
	}
}

func TestPrivilegedGCRemovesWhatIsNotValid(t *testing.T) {
	n := newNode(t, "10.244.0.0/24")
	var nss []*testnet.NS
	for i := 0; i < 3; i++ {
		p := testnet.NewNS(t, "pod")
		if _, err := n.add(fmt.Sprintf("ctr-%d", i), p); err != nil {
			t.Fatal(err)
		}
		nss = append(nss, p)
	}
	stdin := []byte(strings.Replace(string(n.conf("")), `"standalone":true,`,
		`"standalone":true,"cni.dev/valid-attachments":[{"containerID":"ctr-1","ifname":"eth0"}],`, 1))
	if err := n.ns.Do(func() error { return GC(&skel.CmdArgs{StdinData: stdin}) }); err != nil {
		t.Fatal(err)
	}
	host1, _, _ := link.Names("ctr-1", "eth0")
	if l := n.hostLinks(t); len(l) != 1 || l[0] != host1 {
		t.Errorf("links after GC: %v, want only %s", l, host1)
	}
	held, err := ipam.Held(mustParse(t, n.conf("")), "ctr-1", "eth0")
	if err != nil || len(held) != 2 || len(n.held(t)) != 2 {
		t.Errorf("addresses after GC: %v (ctr-1: %v, %v)", n.held(t), held, err)
	}
}

func mustParse(t *testing.T, stdin []byte) *config.Conf {
	t.Helper()
	c, err := config.Parse(stdin, "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPrivilegedStatusWaitsForTheAgent(t *testing.T) {
	n := newNode(t, "10.244.0.0/24")
	bpffs := t.TempDir()
	stdin := []byte(strings.Replace(string(n.conf("")), `"standalone":true,`, fmt.Sprintf(`"bpffs":%q,`, bpffs), 1))
	err := Status(&skel.CmdArgs{StdinData: stdin})
	if cniCode(err) != types.ErrPluginNotAvailable || !strings.Contains(err.Error(), "hivelet agent") {
		t.Fatalf("STATUS without an agent: %v", err)
	}
	// What a loaded agent leaves behind (the real one is in test/cni).
	if err := os.MkdirAll(filepath.Join(bpffs, "links"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bpffs, "links", "cgroup_connect4"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Status(&skel.CmdArgs{StdinData: stdin}); err != nil {
		t.Fatalf("STATUS with the agent's datapath: %v", err)
	}
}

// 1,000 ADD/DEL cycles with failures injected at every step, DELs
// skipped and repeated at random: nothing leaks, nothing is handed out
// twice.
func TestPrivilegedAddDelCyclesWithFaultsLeakNothing(t *testing.T) {
	n := newNode(t, "10.244.0.0/26")
	rng := rand.New(rand.NewPCG(1, 2))
	pool := make([]*testnet.NS, 8)
	for i := range pool {
		pool[i] = testnet.NewNS(t, "pod")
	}
	live := map[int]string{} // pool slot -> container id
	steps := []string{"allocated", "wired"}
	t.Cleanup(func() { fault = nil })
	for cycle := 0; cycle < 1000; cycle++ {
		slot := rng.IntN(len(pool))
		if id, ok := live[slot]; ok {
			if err := n.del(id, pool[slot]); err != nil {
				t.Fatalf("cycle %d: DEL: %v", cycle, err)
			}
			if rng.IntN(4) == 0 { // the runtime repeats DEL
				if err := n.del(id, pool[slot]); err != nil {
					t.Fatalf("cycle %d: repeated DEL: %v", cycle, err)
				}
			}
			delete(live, slot)
			continue
		}
		id := fmt.Sprintf("ctr-%d", cycle)
		fault = nil
		failing := rng.IntN(3) == 0
		if failing {
			at := steps[rng.IntN(len(steps))]
			fault = func(step string) error {
				if step == at {
					return errors.New("injected at " + step)
				}
				return nil
			}
		}
		_, err := n.add(id, pool[slot])
		fault = nil
		switch {
		case failing && err == nil:
			t.Fatalf("cycle %d: injected failure did not fail ADD", cycle)
		case !failing && err != nil:
			t.Fatalf("cycle %d: ADD: %v", cycle, err)
		case !failing:
			live[slot] = id
		}
		if l, h := n.hostLinks(t), n.held(t); len(l) != len(live) || len(h) != 2*len(live) {
			t.Fatalf("cycle %d: %d live pods, but links %v and addresses %v", cycle, len(live), l, h)
		}
	}
}
