package daemon

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"runtime"
	"testing"

	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
	"github.com/hivelet/hivelet/daemon/reconciler"
	"github.com/hivelet/hivelet/daemon/tracker"
	"github.com/hivelet/hivelet/datapath"
	"github.com/hivelet/hivelet/test/testnet"
)

// model fills a tracker with n ClusterIP Services, each with one
// EndpointSlice of 3 ready endpoints.
func model(n int, mutate ...func(*lb.Service)) *tracker.Tracker {
	tr := tracker.New(func() {})
	for i := 0; i < n; i++ {
		name := lb.ServiceName{Namespace: "bench", Name: fmt.Sprintf("svc-%d", i)}
		svc := &lb.Service{
			Name:       name,
			Type:       "ClusterIP",
			ClusterIPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 96 + byte(i>>16), byte(i >> 8), byte(i)})},
			Ports:      []lb.ServicePort{{Name: "http", Proto: datapath.TCP, Port: 80}},
		}
		for _, f := range mutate {
			f(svc)
		}
		tr.OnServiceUpdate(nil, svc)
		var eps []lb.Endpoint
		for j := 0; j < 3; j++ {
			k := 3*i + j
			eps = append(eps, lb.Endpoint{Addr: netip.AddrFrom4([4]byte{10, 128 + byte(k>>16), byte(k >> 8), byte(k)}), Ready: true, Serving: true})
		}
		tr.OnEndpointSliceUpdate(nil, &lb.EndpointSlice{
			Namespace: "bench", Name: name.Name + "-1", Service: name,
			Ports:     []lb.EndpointPort{{Name: "http", Proto: datapath.TCP, Port: 8080}},
			Endpoints: eps,
		})
	}
	return tr
}

// benchSetup checks for root and returns a quiet logger and map sizes that
// hold 100k Services × 3 backends.
func benchSetup(b *testing.B) (*slog.Logger, datapath.MapSizes) {
	testnet.RequireRoot(b)
	return slog.New(slog.NewTextHandler(io.Discard, nil)), datapath.MapSizes{Services: 1 << 19, Backends: 1 << 19, RevNat: 1 << 17, SockRevNat: 1 << 10}
}

// BenchmarkProgram measures a cold full sync, model to kernel maps: n
// Services × 3 backends computed, diffed against empty pinned maps and
// written. Reported per sync (ms) and, for the largest n, the ratio to
// the same work at n/10 (hack/bench.sh prints it; linear scaling is 10).
func BenchmarkProgram(b *testing.B) {
	log, sizes := benchSetup(b)
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			var heap runtime.MemStats
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				tr := model(n)
				bpffs := filepath.Join(b.TempDir(), fmt.Sprintf("bpffs-%d", i))
				dp, err := datapath.Load(datapath.Config{BPFFSDir: bpffs, Sizes: sizes})
				if err != nil {
					b.Fatal(err)
				}
				rec := reconciler.New(dp.LBMap(), log)
				rec.ExpectFrontends(n) // as the agent's syncer does
				b.StartTimer()

				changes, _ := tr.Take(true)
				stats, err := rec.Sync(changes, true)

				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				if stats.Upserts != n || stats.Backends != 3*n {
					b.Fatalf("programmed %d services and %d backends, want %d and %d", stats.Upserts, stats.Backends, n, 3*n)
				}
				runtime.GC()
				runtime.ReadMemStats(&heap)
				runtime.KeepAlive(tr)
				runtime.KeepAlive(rec)
				dp.Close()
				if err := datapath.Cleanup(bpffs); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/sync")
			// Go heap of the model, tracker and reconciler after the sync.
			b.ReportMetric(float64(heap.HeapAlloc)/(1<<20), "MiB-heap")
		})
	}
}

// BenchmarkVerify measures the periodic check (Reconciler.Verify) of n
// programmed Services × 3 backends: a read of every LB map compared with
// the reconciler's record. It runs beside the changes, so its CPU time is
// what they compete with.
func BenchmarkVerify(b *testing.B) {
	log, sizes := benchSetup(b)
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			bpffs := filepath.Join(b.TempDir(), "bpffs")
			dp, err := datapath.Load(datapath.Config{BPFFSDir: bpffs, Sizes: sizes})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { dp.Close(); _ = datapath.Cleanup(bpffs) })
			rec := reconciler.New(dp.LBMap(), log)
			changes, _ := model(n).Take(true)
			if _, err := rec.Sync(changes, true); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				diffs, err := rec.Verify(nil)
				if err != nil || len(diffs) > 0 {
					b.Fatalf("check of an untouched sync: %v %v", diffs, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/check")
		})
	}
}
