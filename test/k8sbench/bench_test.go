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
// EndpointSlice each, creating only what is missing.
func ensureServices(b *testing.B, client kubernetes.Interface, ns string, n int) {
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
		return
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
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// BenchmarkK8sAgent: per N, the agent's start-to-programmed time, the
// latency of 50 single-slice edits from API write to the new backend in
// the pinned map (p50/p99), and its RSS. Each N has a control plane of its
// own (kept under /var/cache/hivelet-k8s/bench-N), so the agent sees
// exactly N Services.
func BenchmarkK8sAgent(b *testing.B) {
	testnet.RequireRoot(b)
	bin, cleanup, err := harness.Build()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cleanup)
	sizes := []int{1000, 10000}
	if s := os.Getenv("HIVELET_BENCH_SERVICES"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, _ := strconv.Atoi(f)
			sizes = append(sizes, n)
		}
	}
	for k, n := range sizes {
		env := []string{
			fmt.Sprintf("HIVELET_K8S_DATA=/var/cache/hivelet-k8s/bench-%d", n),
			fmt.Sprintf("HIVELET_ETCD_PORT=%d", 24000+20*k), fmt.Sprintf("HIVELET_API_PORT=%d", 17000+k),
		}
		client, kubeconfig, err := harness.K8sUp(1000, env...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = harness.K8sDown(env...) })
		ns := "hlbench"
		ensureServices(b, client, ns, n)
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			for it := 0; it < b.N; it++ {
				measure(b, bin, kubeconfig, client, ns, n)
			}
		})
	}
}

func measure(b *testing.B, bin, kubeconfig string, client kubernetes.Interface, ns string, n int) {
	ctx := context.Background()
	bpffs := filepath.Join(b.TempDir(), "bpffs")
	cg := testnet.NewCgroup(b)
	start := time.Now()
	a := harness.StartAgent(b, bin, "--kubeconfig", kubeconfig, "--bpffs", bpffs, "--cgroup2", cg)
	b.Cleanup(func() { _, _ = harness.Run(bin, "agent", "--cleanup", "--bpffs", bpffs) })
	deadline := time.Now().Add(10 * time.Minute)
	for !strings.Contains(a.Log(), "msg=Synced full=true") {
		if time.Now().After(deadline) || a.Exited() {
			b.Fatalf("agent never synced:\n%s", a.Log())
		}
		time.Sleep(5 * time.Millisecond)
	}
	startup := time.Since(start)

	p, err := datapath.OpenPinnedLB(bpffs)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	// Latency at steady state: let the agent settle after its start (it
	// returns the initial load's garbage to the OS), then edit one slice
	// at a time and poll the pinned map for the new backend.
	time.Sleep(2 * time.Second)
	var lat, writes []time.Duration
	for k := 0; k < 50; k++ {
		i := (k * 7919) % n
		svc, err := client.CoreV1().Services(ns).Get(ctx, fmt.Sprintf("svc-%06d", i), metav1.GetOptions{})
		if err != nil {
			b.Fatal(err)
		}
		f := datapath.Frontend{Addr: netip.MustParseAddr(svc.Spec.ClusterIP), Port: 80, Proto: datapath.TCP}
		gen := 1 + k%2
		cur, err := client.DiscoveryV1().EndpointSlices(ns).Get(ctx, fmt.Sprintf("svc-%06d-1", i), metav1.GetOptions{})
		if err != nil {
			b.Fatal(err)
		}
		want := netip.MustParseAddrPort(endpointIP(i, 0, gen) + ":8080")
		if cur.Endpoints[0].Addresses[0] == want.Addr().String() {
			gen = 3 - gen
			want = netip.MustParseAddrPort(endpointIP(i, 0, gen) + ":8080")
		}
		cur.Endpoints[0].Addresses = []string{want.Addr().String()}
		t0 := time.Now()
		if _, err := client.DiscoveryV1().EndpointSlices(ns).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
		writes = append(writes, time.Since(t0))
		for {
			bes, err := p.Lookup(f)
			if err != nil {
				b.Fatal(err)
			}
			if slices.ContainsFunc(bes, func(be datapath.Backend) bool { return be.Addr == want }) {
				break
			}
			if time.Since(t0) > time.Minute {
				b.Fatalf("change %d never reached the datapath", k)
			}
			time.Sleep(200 * time.Microsecond)
		}
		lat = append(lat, time.Since(t0))
	}
	b.ReportMetric(float64(startup.Milliseconds()), "ms-start-to-programmed")
	b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "ms-change-p50")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "ms-change-p99")
	rss, err := harness.RSSMiB(a.Cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(rss, "MiB-RSS")
	// The API write itself (etcd commit included) is part of every change.
	b.ReportMetric(float64(percentile(writes, 0.5).Microseconds())/1000, "ms-api-write-p50")
	b.ReportMetric(float64(percentile(writes, 0.99).Microseconds())/1000, "ms-api-write-p99")
	a.Stop(syscall.SIGTERM)
}
