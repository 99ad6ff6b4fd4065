package e2e

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hivelet/hivelet/test/harness"
	"github.com/hivelet/hivelet/test/testnet"
)

// writeServices writes n ClusterIP Services with one 3-endpoint
// EndpointSlice each, as JSON documents (the agent's fast path).
func writeServices(b *testing.B, dir string, n int) {
	b.Helper()
	f, err := os.Create(filepath.Join(dir, "services.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	for i := 0; i < n; i++ {
		vip := fmt.Sprintf("10.%d.%d.%d", 96+(i>>16), (i>>8)&255, i&255)
		fmt.Fprintf(w, `{"apiVersion":"v1","kind":"Service","metadata":{"name":"svc-%d","namespace":"bench"},"spec":{"clusterIP":"%s","ports":[{"name":"http","port":80,"protocol":"TCP"}]}}`+"\n---\n", i, vip)
		fmt.Fprintf(w, `{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"svc-%d-1","namespace":"bench","labels":{"kubernetes.io/service-name":"svc-%d"}},"addressType":"IPv4","ports":[{"name":"http","port":8080,"protocol":"TCP"}],"endpoints":[`, i, i)
		for j := 0; j < 3; j++ {
			k := 3*i + j
			if j > 0 {
				w.WriteString(",")
			}
			fmt.Fprintf(w, `{"addresses":["10.%d.%d.%d"],"conditions":{"ready":true}}`, 128+(k>>16), (k>>8)&255, k&255)
		}
		w.WriteString("]}\n---\n")
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkAgent starts the real agent on a manifests dir of n Services ×
// 3 backends and reports the time from start to the first completed sync
// (parsing included) and the agent's RSS once it holds them.
func BenchmarkAgent(b *testing.B) {
	testnet.RequireRoot(b)
	for _, n := range []int{10, 100_000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			manifestsDir := filepath.Join(dir, "manifests")
			if err := os.Mkdir(manifestsDir, 0o755); err != nil {
				b.Fatal(err)
			}
			writeServices(b, manifestsDir, n)
			cg := testnet.NewCgroup(b)
			var rss, syncMs float64
			for i := 0; i < b.N; i++ {
				bpffs := filepath.Join(dir, fmt.Sprintf("bpffs-%d", i))
				start := time.Now()
				a := startAgent(b, "--manifests", manifestsDir, "--bpffs", bpffs, "--cgroup2", cg)
				want := fmt.Sprintf("upserts=%d ", n)
				for !strings.Contains(a.Log(), want) {
					if time.Since(start) > 5*time.Minute || a.Exited() {
						b.Fatalf("agent did not program %d services:\n%s", n, a.Log())
					}
					time.Sleep(10 * time.Millisecond)
				}
				syncMs += float64(time.Since(start).Milliseconds())
				time.Sleep(time.Second) // let the agent settle after the initial load
				r, err := harness.RSSMiB(a.Cmd.Process.Pid)
				if err != nil {
					b.Fatal(err)
				}
				rss += r
				a.Stop(15)
				if out, err := harness.Run(hiveletBin, "agent", "--cleanup", "--bpffs", bpffs); err != nil {
					b.Fatalf("cleanup: %v\n%s", err, out)
				}
			}
			b.ReportMetric(syncMs/float64(b.N), "ms-to-first-sync")
			b.ReportMetric(rss/float64(b.N), "MiB-RSS")
		})
	}
}
