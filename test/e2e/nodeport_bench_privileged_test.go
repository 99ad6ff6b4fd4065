package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hivelet/hivelet/test/harness"
	"github.com/hivelet/hivelet/test/testnet"
)

// The NodePort benchmark topology: client ns -- node ns -- backend ns,
// the backend holding the three endpoint addresses.
const (
	benchNodeIP = "192.168.90.1"
	benchPort   = 30080
	measureFor  = 2 * time.Second
)

var benchEndpoints = []string{"10.244.0.5", "10.244.0.6", "10.244.0.7"}

type npBench struct {
	client, node, backend *testnet.NS
}

func newNPBench(b *testing.B) *npBench {
	testnet.RequireRoot(b)
	w := &npBench{client: testnet.NewNS(b, "hlbc"), node: testnet.NewNS(b, "hlbn"), backend: testnet.NewNS(b, "hlbb")}
	w.client.IP(b, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", w.node.Name)
	w.client.IP(b, "addr", "add", "192.168.90.100/24", "dev", "eth0")
	w.client.IP(b, "link", "set", "eth0", "up")
	w.client.IP(b, "route", "add", "10.244.0.0/16", "via", benchNodeIP)
	w.node.IP(b, "addr", "add", benchNodeIP+"/24", "dev", "eth0")
	w.node.IP(b, "link", "set", "eth0", "up")
	w.node.IP(b, "link", "add", "pod0", "type", "veth", "peer", "name", "eth0", "netns", w.backend.Name)
	w.node.IP(b, "addr", "add", "10.244.0.1/24", "dev", "pod0")
	w.node.IP(b, "link", "set", "pod0", "up")
	w.node.Sysctl(b, "net.ipv4.conf.all.forwarding", "1")
	for _, ep := range benchEndpoints {
		w.backend.IP(b, "addr", "add", ep+"/24", "dev", "eth0")
	}
	w.backend.IP(b, "link", "set", "eth0", "up")
	w.backend.IP(b, "route", "add", "default", "via", "10.244.0.1")
	// Clients close with RST (linger 0): no TIME_WAIT to run out of ports.
	w.client.Sysctl(b, "net.ipv4.ip_local_port_range", "10000 65000")
	serveBench(b, w.backend)
	return w
}

// serveBench answers every line with "ok" and sinks bulk data.
func serveBench(b *testing.B, ns *testnet.NS) {
	testnet.ListenTCP(b, ns, ":8080", func(c net.Conn) {
		r := bufio.NewReaderSize(c, 64<<10)
		for {
			line, err := r.ReadSlice('\n')
			if err != nil && len(line) == 0 {
				return
			}
			if line[0] == 'q' {
				if _, err := c.Write([]byte("ok\n")); err != nil {
					return
				}
			}
		}
	})
}

// inClient runs workers goroutines, each on a thread in the client
// namespace, until the deadline, and returns the operations they did.
func (w *npBench) inClient(b *testing.B, workers int, op func() error) (float64, error) {
	var ops atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	deadline := time.Now().Add(measureFor)
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := w.client.Do(func() error {
				for time.Now().Before(deadline) {
					if err := op(); err != nil {
						return err
					}
					ops.Add(1)
				}
				return nil
			})
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, err
	}
	return float64(ops.Load()) / time.Since(start).Seconds(), nil
}

func request(c net.Conn, r *bufio.Reader) error {
	if _, err := c.Write([]byte("q\n")); err != nil {
		return err
	}
	line, err := r.ReadString('\n')
	if err == nil && line != "ok\n" {
		err = fmt.Errorf("answer %q", line)
	}
	return err
}

// measure returns new connections/s (connect, one request, RST close),
// requests/s over established connections, and bulk MB/s over one.
func (w *npBench) measure(b *testing.B, addr string) (cps, rps, mbps float64) {
	var err error
	cps, err = w.inClient(b, 4, func() error {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return err
		}
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		err = request(c, bufio.NewReader(c))
		_ = c.(*net.TCPConn).SetLinger(0)
		c.Close()
		return err
	})
	if err != nil {
		b.Fatalf("new connections to %s: %v", addr, err)
	}
	var conns []net.Conn
	w.client.Must(b, func() error {
		for range 4 {
			c, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		return nil
	})
	rps, err = requestsPerSecond(conns)
	if err != nil {
		b.Fatalf("requests to %s: %v", addr, err)
	}
	mbps, err = bulk(conns[0])
	if err != nil {
		b.Fatalf("bulk to %s: %v", addr, err)
	}
	for _, c := range conns {
		c.Close()
	}
	return cps, rps, mbps
}

// requestsPerSecond runs request/answer round trips on every connection
// at once (connections are already made in the right namespace).
func requestsPerSecond(conns []net.Conn) (float64, error) {
	var ops atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, len(conns))
	deadline := time.Now().Add(measureFor)
	start := time.Now()
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := bufio.NewReader(c)
			_ = c.SetDeadline(deadline.Add(5 * time.Second))
			for time.Now().Before(deadline) {
				if err := request(c, r); err != nil {
					errs <- err
					return
				}
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(ops.Load()) / time.Since(start).Seconds(), nil
}

// bulk streams data one way for measureFor and returns MB/s.
func bulk(c net.Conn) (float64, error) {
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = 'x' // no newline: the server only sinks
	}
	deadline := time.Now().Add(measureFor)
	_ = c.SetDeadline(deadline.Add(5 * time.Second))
	var n int64
	start := time.Now()
	for time.Now().Before(deadline) {
		m, err := c.Write(buf)
		n += int64(m)
		if err != nil {
			return 0, err
		}
	}
	return float64(n) / 1e6 / time.Since(start).Seconds(), nil
}

// hiveletManifests renders n Services (the first a NodePort) with the
// three endpoints each.
func hiveletManifests(n int) string {
	var b strings.Builder
	for i, s := range kpServices(n) {
		typ, np := "ClusterIP", ""
		if i == 0 {
			typ, np = "NodePort", fmt.Sprintf(", nodePort: %d", benchPort)
		}
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: default}\nspec: {type: %s, clusterIP: %s, ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP%s}]}\n", s.name, typ, s.vip, np)
		fmt.Fprintf(&b, "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: %s-1, namespace: default, labels: {kubernetes.io/service-name: %s}}\naddressType: IPv4\nports: [{name: http, port: 8080, protocol: TCP}]\nendpoints:\n", s.name, s.name)
		for _, ep := range benchEndpoints {
			fmt.Fprintf(&b, "- {addresses: [%s], conditions: {ready: true}, nodeName: node}\n", ep)
		}
	}
	return b.String()
}

// BenchmarkNodePort measures, for 10 and 10k Services in the same run,
// NodePort new connections/s, requests/s on established connections and
// bulk throughput from an external client: through hivelet's TC datapath,
// through kube-proxy's iptables (legacy backend) and nftables rules, and
// plain forwarding to the backend (no Service) as the baseline. Each
// proxy gets its own client/node/backend namespaces, all set up first;
// then three rounds measure every proxy in turn and the best of each is
// kept (this machine is noisy). The cost a proxy adds to one connection
// is reported as µs over plain forwarding: the load generator shares the
// two CPUs, so rates alone understate the differences.
func BenchmarkNodePort(b *testing.B) {
	modes := []string{"direct", "hivelet", "iptables-legacy", "nftables"}
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			results := map[string][3]float64{}
			for range b.N {
				setups := map[string]*npBench{}
				for _, mode := range modes {
					setups[mode] = setupMode(b, mode, n)
				}
				for range 3 {
					for _, mode := range modes {
						addr := fmt.Sprintf("%s:%d", benchNodeIP, benchPort)
						if mode == "direct" {
							addr = benchEndpoints[0] + ":8080"
						}
						cps, rps, mbps := setups[mode].measure(b, addr)
						r := results[mode]
						results[mode] = [3]float64{max(r[0], cps), max(r[1], rps), max(r[2], mbps)}
					}
				}
			}
			for mode, r := range results {
				b.ReportMetric(r[0], mode+"-conn/s")
				b.ReportMetric(r[1], mode+"-req/s")
				b.ReportMetric(r[2], mode+"-MB/s")
				if mode != "direct" {
					b.ReportMetric(1e6/r[0]-1e6/results["direct"][0], mode+"-added-µs/conn")
				}
			}
			h, d := results["hivelet"], results["direct"]
			b.ReportMetric(h[0]/results["iptables-legacy"][0], "conn/s-hivelet/iptables-legacy")
			b.ReportMetric(h[0]/results["nftables"][0], "conn/s-hivelet/nftables")
			b.ReportMetric(h[2]/d[2], "MB/s-hivelet/direct")
			b.ReportMetric(h[1]/d[1], "req/s-hivelet/direct")
		})
	}
}

// setupMode builds one topology and programs the NodePort with mode.
func setupMode(b *testing.B, mode string, n int) *npBench {
	w := newNPBench(b)
	addr := fmt.Sprintf("%s:%d", benchNodeIP, benchPort)
	switch mode {
	case "hivelet":
		dir := b.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "svc.yaml"), []byte(hiveletManifests(n)), 0o644); err != nil {
			b.Fatal(err)
		}
		bpffs := filepath.Join(b.TempDir(), "bpffs")
		a := harness.Start(b, exec.Command("nsenter", "--net="+w.node.Path(), "--", hiveletBin, "agent",
			"--manifests", dir, "--bpffs", bpffs, "--cgroup2", testnet.NewCgroup(b), "--hostname-override", "node",
			"--node-ip", benchNodeIP, "--devices", "eth0", "--healthz-bind-address", "", "--metrics-bind-address", ""))
		b.Cleanup(func() {
			a.Stop(9)
			_, _ = harness.Run(hiveletBin, "agent", "--cleanup", "--bpffs", bpffs)
		})
		harness.WaitFor(b, "hivelet programs the NodePort", func() bool {
			return len(harness.BackendsOf(hiveletBin, bpffs, addr+"/TCP")) == 3
		})
	case "iptables-legacy":
		w.node.Must(b, func() error { return pipe(iptablesRules(n, benchEndpoints), "iptables-legacy-restore") })
	case "nftables":
		// nft takes minutes for 10k Services' chains (kernel-side).
		w.node.Must(b, func() error { return pipe(nftRules(n, benchEndpoints), "nft", "-f", "-") })
	}
	return w
}

// pipe runs a command in the calling thread's namespace with input on
// stdin (iptables-restore, nft -f -).
func pipe(input string, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(input)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v: %s", name, err, out)
	}
	return nil
}
