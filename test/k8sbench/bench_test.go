// Package k8sbench measures the agent against a real API server: start to
// fully programmed, API write to datapath for single EndpointSlice
// changes, and memory, with N Services × 3 endpoints created through the
// API (and kept in etcd between runs: creating them is the slow part).
package k8sbench

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/hivelet/hivelet/datapath"
	"github.com/hivelet/hivelet/test/harness"
	"github.com/hivelet/hivelet/test/testnet"
)

// endpointIP gives service i's endpoint j a distinct address in
// 10.128.0.0/9: never routed, never contacted.
func endpointIP(i, j, gen int) string {
	k := 3*i + j
	return fmt.Sprintf("10.%d.%d.%d", 128+gen*32+(k>>16), (k>>8)&255, k&255)
}

func slice(ns string, i, gen int) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%06d-1", i), Namespace: ns,
			Labels: map[string]string{discoveryv1.LabelServiceName: fmt.Sprintf("svc-%06d", i)}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for j := 0; j < 3; j++ {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{endpointIP(i, j, gen)},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
	}
	return s
}

// ensureServices makes namespace ns hold Services svc-0..n-1 with one
// EndpointSlice each, creating only what is missing: through the API
// server, or straight into etcd at etcdURL when more than bulkLoadOver are
// missing. It reports whether it wrote into etcd: the API server must then
// be restarted.
func ensureServices(b *testing.B, client kubernetes.Interface, etcdURL, ns string, n int) (bulk bool) {
	b.Helper()
	ctx := context.Background()
	_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		b.Fatal(err)
	}
	have := map[string]bool{}
	opts := metav1.ListOptions{Limit: 5000}
	for {
		l, err := client.DiscoveryV1().EndpointSlices(ns).List(ctx, opts)
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range l.Items {
			have[s.Name] = true
		}
		if opts.Continue = l.Continue; opts.Continue == "" {
			break
		}
	}
	var missing []int
	for i := 0; i < n; i++ {
		if !have[fmt.Sprintf("svc-%06d-1", i)] {
			missing = append(missing, i)
		}
	}
	if len(missing) == 0 {
		return false
	}
	if len(missing) > bulkLoadOver {
		bulkLoad(b, client, etcdURL, ns, missing)
		return true
	}
	b.Logf("creating %d Services and EndpointSlices in %s (kept for later runs)", len(missing), ns)
	start := time.Now()
	var wg sync.WaitGroup
	work := make(chan int)
	errs := make(chan error, 1)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				svc := &corev1.Service{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%06d", i), Namespace: ns},
					Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
				}
				if _, err := client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
					select {
					case errs <- err:
					default:
					}
					continue
				}
				if _, err := client.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice(ns, i, 0), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for _, i := range missing {
		work <- i
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	b.Logf("created in %v", time.Since(start).Round(time.Second))
	return false
}

// proxy is one service proxy under test.
type proxy struct {
	start  func(b *testing.B) *harness.Agent
	synced func() bool // everything programmed since start
	// fullSync is the proxy's own figure for its first full sync, read
	// once synced reports true.
	fullSync func(b *testing.B) time.Duration
	// watch is called before an API write that puts want into f's
	// backends; the function it returns blocks until that is programmed
	// and returns the latency from t0, the write's start.
	watch  func(f datapath.Frontend, want netip.AddrPort) func(t0 time.Time) time.Duration
	verify func(b *testing.B, want netip.AddrPort) // the last change is in the datapath
}

// hivelet runs the agent against the API server; programmed means: in the
// pinned maps, polled from outside.
func hivelet(b *testing.B, bin, kubeconfig string) proxy {
	bpffs := filepath.Join(b.TempDir(), "bpffs")
	cg := testnet.NewCgroup(b)
	var a *harness.Agent
	var pinned *datapath.PinnedLB
	lookup := func(f datapath.Frontend) []datapath.Backend {
		if pinned == nil {
			var err error
			if pinned, err = datapath.OpenPinnedLB(bpffs); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { pinned.Close() })
		}
		// Reading the maps from outside races with the agent's writes: a
		// slot read just before the agent drops the backend it names
		// points nowhere by the time the backend is read. That is a
		// torn read of this poller (the datapath reads one entry per
		// lookup), so it only means "look again".
		bes, _ := pinned.Lookup(f)
		return bes
	}
	has := func(f datapath.Frontend, want netip.AddrPort) bool {
		return slices.ContainsFunc(lookup(f), func(be datapath.Backend) bool { return be.Addr == want })
	}
	return proxy{
		start: func(b *testing.B) *harness.Agent {
			args := []string{"--kubeconfig", kubeconfig, "--bpffs", bpffs, "--cgroup2", cg}
			// HIVELET_BENCH_AGENT_ARGS: extra agent flags, to measure a setting.
			args = append(args, strings.Fields(os.Getenv("HIVELET_BENCH_AGENT_ARGS"))...)
			a = harness.StartAgent(b, bin, args...)
			b.Cleanup(func() { _, _ = harness.Run(bin, "agent", "--cleanup", "--bpffs", bpffs) })
			return a
		},
		synced: func() bool { return strings.Contains(a.Log(), "msg=Synced full=true") },
		fullSync: func(b *testing.B) time.Duration {
			m := regexp.MustCompile(`msg=Synced full=true .*duration=(\S+)`).FindStringSubmatch(a.Log())
			if m == nil {
				b.Fatalf("hivelet: no duration in its first full sync's log line:\n%s", a.Log())
			}
			d, err := time.ParseDuration(m[1])
			if err != nil {
				b.Fatalf("hivelet: first full sync's duration: %v", err)
			}
			return d
		},
		watch: func(f datapath.Frontend, want netip.AddrPort) func(time.Time) time.Duration {
			return func(t0 time.Time) time.Duration {
				for !has(f, want) {
					if time.Since(t0) > time.Minute {
						b.Fatalf("hivelet: change never reached the datapath")
					}
					time.Sleep(200 * time.Microsecond)
				}
				return time.Since(t0)
			}
		},
		verify: func(b *testing.B, want netip.AddrPort) {},
	}
}

// result is one proxy's figures at one Service count.
type result struct {
	Proxy    string
	Services int
	Sync     time.Duration // start to everything programmed
	FullSync time.Duration // the first full sync alone, as the proxy reports it
	P50, P99 time.Duration // one EndpointSlice change, API write to programmed
	RSSMiB   float64
	WriteP99 time.Duration // the API write alone
}

// changes per proxy and size: p99 over 100 is not just the worst one.
const changes = 100

// changeGap spaces the edits beyond kube-proxy's default minimum sync
// interval (1 s), so every proxy is timed on single, isolated changes.
const changeGap = 1100 * time.Millisecond

// BenchmarkK8sProxies: per N, hivelet and upstream kube-proxy in the same
// run against the same API server and objects: start to fully programmed,
// 50 single-slice edits from API write to programmed (p50/p99), RSS. Each
// N has a control plane of its own (kept under
// /var/cache/hivelet-k8s/bench-N), so every proxy sees exactly N Services.
// HIVELET_BENCH_SERVICES (e.g. 1000,10000,100000) picks the sizes;
// kube-proxy runs up to HIVELET_BENCH_KUBE_PROXY_MAX (10000) only: at
// 100k its syncs take minutes. HIVELET_BENCH_PROXIES picks proxies
// (default hivelet,kube-proxy-nftables,kube-proxy-iptables-legacy; also
// kube-proxy-iptables-nft). The table and chart go to
// HIVELET_BENCH_RESULTS when set.
func BenchmarkK8sProxies(b *testing.B) {
	testnet.RequireRoot(b)
	bin, cleanup, err := harness.Build()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cleanup)
	sizes := envList("HIVELET_BENCH_SERVICES", "1000,10000")
	names := envList("HIVELET_BENCH_PROXIES", "hivelet,kube-proxy-nftables,kube-proxy-iptables-legacy")
	kpMax := 10000
	if s := os.Getenv("HIVELET_BENCH_KUBE_PROXY_MAX"); s != "" {
		kpMax, _ = strconv.Atoi(s)
	}
	var results []result
	for _, ns := range sizes {
		n, err := strconv.Atoi(ns)
		if err != nil {
			b.Fatalf("HIVELET_BENCH_SERVICES: %v", err)
		}
		// Ports by order of magnitude: each size's control plane always
		// gets the same ones, so its etcd data is reused as is.
		k := len(ns)
		env := []string{
			"HIVELET_ETCD_TMPFS=1",
			fmt.Sprintf("HIVELET_K8S_DATA=/var/cache/hivelet-k8s/bench-%d", n),
			fmt.Sprintf("HIVELET_ETCD_PORT=%d", 24000+20*k), fmt.Sprintf("HIVELET_API_PORT=%d", 17000+k),
		}
		client, kubeconfig, err := harness.K8sUp(1000, env...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = harness.K8sDown(env...) })
		etcdURL := fmt.Sprintf("http://127.0.0.1:%d", 24000+20*k)
		if ensureServices(b, client, etcdURL, "hlbench", n) {
			// The API server reads etcd at start only.
			if err := harness.K8sDown(env...); err != nil {
				b.Fatal(err)
			}
			if client, kubeconfig, err = harness.K8sUp(1000, env...); err != nil {
				b.Fatal(err)
			}
			if ensureServices(b, client, etcdURL, "hlbench", n) {
				b.Fatal("the API server does not serve the Services written into etcd")
			}
		}
		for _, name := range names {
			if name != "hivelet" && n > kpMax {
				continue
			}
			if _, ok := kubeProxyModes[name]; !ok && name != "hivelet" {
				b.Fatalf("HIVELET_BENCH_PROXIES: unknown proxy %q", name)
			}
			b.Run(fmt.Sprintf("services=%d/proxy=%s", n, name), func(b *testing.B) {
				for it := 0; it < b.N; it++ {
					// A freshly started API server repairs its IP
					// allocations for a while, and the previous proxy's
					// exit settles: start each proxy on a quiet machine.
					waitQuiet(b)
					var p proxy
					if name == "hivelet" {
						p = hivelet(b, bin, kubeconfig)
					} else {
						p = kubeProxy(b, name, kubeconfig, client)
					}
					r := measure(b, name, p, client, "hlbench", n)
					results = append(results, r)
				}
			})
		}
		// Free the control plane's memory before the next size.
		if err := harness.K8sDown(env...); err != nil {
			b.Fatal(err)
		}
	}
	if dir := os.Getenv("HIVELET_BENCH_RESULTS"); dir != "" && !b.Failed() {
		if err := writeResults(dir, results); err != nil {
			b.Fatal(err)
		}
		b.Logf("results written to %s", dir)
	}
}

func envList(key, def string) []string {
	s := os.Getenv(key)
	if s == "" {
		s = def
	}
	return strings.Split(s, ",")
}

func measure(b *testing.B, name string, p proxy, client kubernetes.Interface, ns string, n int) result {
	ctx := context.Background()
	start := time.Now()
	proc := p.start(b)
	deadline := time.Now().Add(15 * time.Minute)
	for !p.synced() {
		if time.Now().After(deadline) || proc.Exited() {
			b.Fatalf("never synced:\n%s", proc.Log())
		}
		time.Sleep(5 * time.Millisecond)
	}
	r := result{Proxy: name, Services: n, Sync: time.Since(start)}
	r.FullSync = p.fullSync(b)

	// Steady state: let the proxy settle after its start, then edit one
	// slice at a time.
	time.Sleep(2 * time.Second)
	var lat, writes []time.Duration
	var trace []string
	var want netip.AddrPort
	for k := 0; k < changes; k++ {
		time.Sleep(changeGap)
		i := (k * 7919) % n
		svc, err := client.CoreV1().Services(ns).Get(ctx, fmt.Sprintf("svc-%06d", i), metav1.GetOptions{})
		if err != nil {
			b.Fatal(err)
		}
		f := datapath.Frontend{Addr: netip.MustParseAddr(svc.Spec.ClusterIP), Port: 80, Proto: datapath.TCP}
		cur, err := client.DiscoveryV1().EndpointSlices(ns).Get(ctx, fmt.Sprintf("svc-%06d-1", i), metav1.GetOptions{})
		if err != nil {
			b.Fatal(err)
		}
		gen := 1 + k%2
		want = netip.MustParseAddrPort(endpointIP(i, 0, gen) + ":8080")
		if cur.Endpoints[0].Addresses[0] == want.Addr().String() {
			gen = 3 - gen
			want = netip.MustParseAddrPort(endpointIP(i, 0, gen) + ":8080")
		}
		cur.Endpoints[0].Addresses = []string{want.Addr().String()}
		wait := p.watch(f, want)
		t0 := time.Now()
		// What the EndpointSlice controller writes, and what both proxies
		// compute network programming latency from.
		metav1.SetMetaDataAnnotation(&cur.ObjectMeta, corev1.EndpointsLastChangeTriggerTime, t0.Format(time.RFC3339Nano))
		if _, err := client.DiscoveryV1().EndpointSlices(ns).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
		writes = append(writes, time.Since(t0))
		lat = append(lat, wait(t0))
		trace = append(trace, fmt.Sprintf("%d %s %.3f %.3f\n", k, t0.UTC().Format("15:04:05.000"), ms(writes[k]), ms(lat[k])))
	}
	// HIVELET_BENCH_TRACE=PREFIX: every change's start, API write and
	// latency (ms) into PREFIX.N.PROXY, to line the slow ones up with the
	// proxy's log.
	if f := os.Getenv("HIVELET_BENCH_TRACE"); f != "" {
		if err := os.WriteFile(fmt.Sprintf("%s.%d.%s", f, n, name), []byte(strings.Join(trace, "")), 0o644); err != nil {
			b.Error(err)
		}
	}
	p.verify(b, want)
	r.P50, r.P99 = harness.Percentile(lat, 0.5), harness.Percentile(lat, 0.99)
	r.WriteP99 = harness.Percentile(writes, 0.99)
	rss, err := harness.RSSMiB(proc.Cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	r.RSSMiB = rss
	proc.Stop(syscall.SIGTERM)
	// HIVELET_BENCH_AGENT_LOG: keep the proxy's log (to see where time went).
	if f := os.Getenv("HIVELET_BENCH_AGENT_LOG"); f != "" {
		if err := os.WriteFile(f, []byte(proc.Log()), 0o644); err != nil {
			b.Error(err)
		}
	}

	b.ReportMetric(float64(r.Sync.Milliseconds()), "ms-start-to-programmed")
	b.ReportMetric(ms(r.FullSync), "ms-full-sync")
	b.ReportMetric(ms(r.P50), "ms-change-p50")
	b.ReportMetric(ms(r.P99), "ms-change-p99")
	b.ReportMetric(rss, "MiB-RSS")
	b.ReportMetric(ms(r.WriteP99), "ms-api-write-p99")
	return r
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// waitQuiet waits (up to 3 minutes) until the machine's CPUs are at least
// 90% idle over two seconds.
func waitQuiet(b *testing.B) {
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		i0, t0 := cpuTimes(b)
		time.Sleep(2 * time.Second)
		i1, t1 := cpuTimes(b)
		if t1 > t0 && float64(i1-i0)/float64(t1-t0) >= 0.9 {
			return
		}
	}
	b.Logf("machine still busy after 3 minutes; measuring anyway")
}

// cpuTimes returns idle and total jiffies from /proc/stat.
func cpuTimes(b *testing.B) (idle, total uint64) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	fields := strings.Fields(strings.SplitN(string(raw), "\n", 2)[0])[1:]
	for i, f := range fields {
		v, _ := strconv.ParseUint(f, 10, 64)
		total += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return idle, total
}
