package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hivelet/hivelet/test/harness"
	"github.com/hivelet/hivelet/test/testnet"
)

// The north-south topology: an external client and two nodes on one LAN
// (a bridge in the client's namespace), one pod behind each node, pod
// CIDRs routed natively between the nodes.
const (
	lanClient = "192.168.70.100"
	extIP     = "192.168.80.10" // an ExternalIP, routed by the client to node 1
)

type nsNode struct {
	name  string
	ns    *testnet.NS
	ip    string
	podIP string
	pod   *testnet.NS
	bpffs string
	cg    string
	dir   string
	agent *harness.Agent
}

type northSouth struct {
	client *testnet.NS
	nodes  [2]*nsNode
}

func newNorthSouth(t *testing.T) *northSouth {
	testnet.RequireRoot(t)
	w := &northSouth{client: testnet.NewNS(t, "hlc")}
	c := w.client
	c.IP(t, "link", "add", "br0", "type", "bridge")
	c.IP(t, "addr", "add", lanClient+"/24", "dev", "br0")
	c.IP(t, "link", "set", "br0", "up")
	c.IP(t, "route", "add", extIP+"/32", "via", "192.168.70.1")
	for i := range w.nodes {
		n := &nsNode{
			name:  fmt.Sprintf("node%d", i+1),
			ns:    testnet.NewNS(t, "hlnode"),
			ip:    fmt.Sprintf("192.168.70.%d", i+1),
			podIP: fmt.Sprintf("10.244.%d.10", i+1),
			pod:   testnet.NewNS(t, "hlpod"),
			bpffs: filepath.Join(t.TempDir(), "bpffs"),
			cg:    testnet.NewCgroup(t),
			dir:   t.TempDir(),
		}
		w.nodes[i] = n
		lan := fmt.Sprintf("lan%d", i+1)
		c.IP(t, "link", "add", lan, "type", "veth", "peer", "name", "eth0", "netns", n.ns.Name)
		c.IP(t, "link", "set", lan, "master", "br0", "up")
		n.ns.IP(t, "addr", "add", n.ip+"/24", "dev", "eth0")
		n.ns.IP(t, "link", "set", "eth0", "up")
		n.ns.IP(t, "link", "add", "pod0", "type", "veth", "peer", "name", "eth0", "netns", n.pod.Name)
		n.ns.IP(t, "addr", "add", fmt.Sprintf("10.244.%d.1/24", i+1), "dev", "pod0")
		n.ns.IP(t, "link", "set", "pod0", "up")
		n.ns.Sysctl(t, "net.ipv4.conf.all.forwarding", "1")
		n.pod.IP(t, "addr", "add", n.podIP+"/24", "dev", "eth0")
		n.pod.IP(t, "link", "set", "eth0", "up")
		n.pod.IP(t, "route", "add", "default", "via", fmt.Sprintf("10.244.%d.1", i+1))
		serveClientAddr(t, n.pod, n.name+"-pod")
	}
	w.nodes[0].ns.IP(t, "route", "add", "10.244.2.0/24", "via", w.nodes[1].ip)
	w.nodes[1].ns.IP(t, "route", "add", "10.244.1.0/24", "via", w.nodes[0].ip)
	for _, n := range w.nodes {
		writeFile(t, filepath.Join(n.dir, "services.yaml"), northSouthManifests(w))
		n.start(t)
	}
	return w
}

// serveClientAddr answers each TCP connection on :8080 with "name addr"
// (the peer as the pod sees it), then echoes lines.
func serveClientAddr(t *testing.T, ns *testnet.NS, name string) {
	testnet.ListenTCP(t, ns, ":8080", func(c net.Conn) {
		fmt.Fprintf(c, "%s %s\n", name, c.RemoteAddr().(*net.TCPAddr).IP)
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			fmt.Fprintf(c, "%s\n", sc.Text())
		}
	})
}

// northSouthManifests: "web" (NodePort 30080, an ExternalIP) has both
// pods; "local" (NodePort 30081, externalTrafficPolicy Local, health
// check 32100) has node 1's pod only.
func northSouthManifests(w *northSouth) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: NodePort
  clusterIP: 10.96.0.50
  externalIPs: [%[3]s]
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- {addresses: [%[1]s], conditions: {ready: true}, nodeName: node1}
- {addresses: [%[2]s], conditions: {ready: true}, nodeName: node2}
---
apiVersion: v1
kind: Service
metadata: {name: local, namespace: default}
spec:
  type: NodePort
  clusterIP: 10.96.0.51
  externalTrafficPolicy: Local
  healthCheckNodePort: 32100
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30081, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: local-1, namespace: default, labels: {kubernetes.io/service-name: local}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- {addresses: [%[1]s], conditions: {ready: true}, nodeName: node1}
`, w.nodes[0].podIP, w.nodes[1].podIP, extIP)
}

func (n *nsNode) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command("nsenter", "--net="+n.ns.Path(), "--", hiveletBin, "agent",
		"--manifests", n.dir, "--bpffs", n.bpffs, "--cgroup2", n.cg,
		"--hostname-override", n.name, "--node-ip", n.ip, "--devices", "eth0",
		"--healthz-bind-address", "127.0.0.1:0", "--metrics-bind-address", "127.0.0.1:0")
	n.agent = harness.Start(t, cmd)
	t.Cleanup(func() { _, _ = harness.Run(hiveletBin, "agent", "--cleanup", "--bpffs", n.bpffs) })
	frontend := n.ip + ":30080/TCP"
	harness.WaitFor(t, "agent on "+n.name+" programs NodePort "+frontend, func() bool {
		return len(backendsOf(t, n.bpffs, frontend)) == 2
	})
}

// dial connects from the client namespace and returns the first line.
func (w *northSouth) dial(t *testing.T, addr string) (net.Conn, *bufio.Reader, string, error) {
	t.Helper()
	var c net.Conn
	err := w.client.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, 2*time.Second)
		return err
	})
	if err != nil {
		return nil, nil, "", err
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		c.Close()
		return nil, nil, "", fmt.Errorf("read from %s: %w", addr, err)
	}
	return c, r, strings.TrimSpace(line), nil
}

func (w *northSouth) hello(t *testing.T, addr string) string {
	t.Helper()
	c, _, line, err := w.dial(t, addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	return line
}

// httpGetIn fetches http://addr/path over a connection made in ns
// (net/http dials on goroutines of its own, in any namespace).
func httpGetIn(t *testing.T, ns *testnet.NS, addr, path string) (int, string) {
	t.Helper()
	var conn net.Conn
	ns.Must(t, func() error {
		var err error
		conn, err = net.DialTimeout("tcp", addr, 2*time.Second)
		return err
	})
	tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return conn, nil }}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func echo(t *testing.T, c net.Conn, r *bufio.Reader, msg string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "%s\n", msg); err != nil {
		t.Fatalf("write on established connection: %v", err)
	}
	got, err := r.ReadString('\n')
	if err != nil || strings.TrimSpace(got) != msg {
		t.Fatalf("established connection: got %q, %v; want %q", got, err, msg)
	}
}

func TestPrivilegedNodePortFromOutside(t *testing.T) {
	w := newNorthSouth(t)
	n1 := w.nodes[0]

	t.Run("NodePort reaches the local pod with the client address and the remote pod through SNAT", func(t *testing.T) {
		seen := map[string]bool{}
		for i := 0; i < 40 && len(seen) < 2; i++ {
			seen[w.hello(t, n1.ip+":30080")] = true
		}
		want := map[string]bool{"node1-pod " + lanClient: true, "node2-pod " + n1.ip: true}
		for k := range want {
			if !seen[k] {
				t.Errorf("never saw %q; saw %v", k, seen)
			}
		}
		for k := range seen {
			if !want[k] {
				t.Errorf("unexpected answer %q", k)
			}
		}
	})

	t.Run("ExternalIP", func(t *testing.T) {
		got := w.hello(t, extIP+":80")
		if !strings.HasPrefix(got, "node1-pod") && !strings.HasPrefix(got, "node2-pod") {
			t.Errorf("ExternalIP answered %q", got)
		}
	})

	t.Run("externalTrafficPolicy Local keeps the client address; a node without local endpoints drops", func(t *testing.T) {
		for range 10 {
			if got := w.hello(t, n1.ip+":30081"); got != "node1-pod "+lanClient {
				t.Fatalf("node 1 answered %q, want the local pod seeing %s", got, lanClient)
			}
		}
		if _, _, line, err := w.dial(t, w.nodes[1].ip+":30081"); err == nil {
			t.Errorf("node 2 has no local endpoint but answered %q", line)
		}
		for _, c := range []struct {
			node  *nsNode
			code  int
			local string
		}{{n1, 200, `"localEndpoints":1`}, {w.nodes[1], 503, `"localEndpoints":0`}} {
			code, body := httpGetIn(t, w.client, c.node.ip+":32100", "/")
			if code != c.code || !strings.Contains(body, c.local) {
				t.Errorf("%s health check: %d %s, want %d with %s", c.node.name, code, body, c.code, c.local)
			}
		}
	})

	t.Run("the CLI shows attachments, counters and tracked flows", func(t *testing.T) {
		out, err := harness.Run(hiveletBin, "datapath", "status", "--bpffs", n1.bpffs)
		if err != nil || !strings.Contains(out, "devices:   eth0") || !strings.Contains(out, "xlate_new:") {
			t.Fatalf("datapath status: %v\n%s", err, out)
		}
		out, err = harness.Run(hiveletBin, "datapath", "conntrack", "--bpffs", n1.bpffs)
		if err != nil || !strings.Contains(out, lanClient+":") || !strings.Contains(out, "nat ") {
			t.Fatalf("datapath conntrack: %v\n%s", err, out)
		}
	})

	t.Run("established flows survive an agent crash and restart", func(t *testing.T) {
		type flow struct {
			c net.Conn
			r *bufio.Reader
		}
		var flows []flow
		owners := map[string]bool{}
		for i := 0; i < 40 && len(owners) < 2; i++ {
			c, r, line, err := w.dial(t, n1.ip+":30080")
			if err != nil {
				t.Fatal(err)
			}
			owner := strings.Fields(line)[0]
			if owners[owner] {
				c.Close()
				continue
			}
			owners[owner] = true
			flows = append(flows, flow{c, r})
			t.Cleanup(func() { c.Close() })
		}
		if len(flows) != 2 {
			t.Fatalf("could not open a flow to each pod: %v", owners)
		}
		n1.agent.Stop(syscall.SIGKILL)
		for i, f := range flows {
			echo(t, f.c, f.r, fmt.Sprintf("while the agent is down %d", i))
		}
		n1.start(t)
		for i, f := range flows {
			echo(t, f.c, f.r, fmt.Sprintf("after the restart %d", i))
		}
		if got := w.hello(t, n1.ip+":30080"); !strings.Contains(got, "-pod") {
			t.Errorf("new connection after restart answered %q", got)
		}
	})
}
