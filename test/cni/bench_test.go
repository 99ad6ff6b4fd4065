package cni

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hivelet/hivelet/test/testnet"
)

// bridgeConf is the reference: Debian's bridge + host-local plugins as a
// plain Kubernetes node uses them (a gateway bridge, no masquerade, so no
// iptables rules are timed). Debian's plugins speak CNI 1.0.0 at most.
const bridgeConf = `{"cniVersion":"1.0.0","name":"bridgenet","plugins":[{"type":"bridge","bridge":"cni0",
  "isGateway":true,"ipMasq":false,"ipam":{"type":"host-local","dataDir":%q,
  "ranges":[[{"subnet":"10.245.0.0/16"}],[{"subnet":"fd00:10:245::/64"}]]}}]}`

// BenchmarkCNIAddDel times ADD and DEL through cnitool, as a runtime
// execs them, for hivelet-cni and for the reference bridge + host-local
// plugins, interleaved in the same run (so drift hits both), with a fresh
// pod namespace per cycle. Both are dual-stack.
func BenchmarkCNIAddDel(b *testing.B) {
	s := newSetup(b, "--standalone")
	s.rewrite(b, func(p map[string]any) {
		p["ipam"].(map[string]any)["ranges"] = []any{
			[]any{map[string]any{"subnet": "10.244.0.0/16"}}, []any{map[string]any{"subnet": "fd00:10:244::/64"}}}
	})
	if err := os.WriteFile(filepath.Join(s.confDir, "10-bridge.conflist"), fmt.Appendf(nil, bridgeConf, b.TempDir()), 0o644); err != nil {
		b.Fatal(err)
	}
	const cycles = 200
	lat := map[string][]time.Duration{}
	for i := 0; i < cycles; i++ {
		nets := []string{"hivelet", "bridgenet"}
		if i%2 == 1 {
			slices.Reverse(nets)
		}
		for _, network := range nets {
			pod := testnet.NewNS(b, "pod")
			for _, op := range []string{"add", "del"} {
				t0 := time.Now()
				if out, err := s.cnitool(op, network, pod); err != nil {
					b.Fatalf("cnitool %s %s: %v\n%s", op, network, err, out)
				}
				lat[network+"/"+op] = append(lat[network+"/"+op], time.Since(t0))
			}
		}
	}
	for _, op := range []string{"add", "del"} {
		h, r := pct(lat["hivelet/"+op], 0.5), pct(lat["bridgenet/"+op], 0.5)
		b.ReportMetric(ms(h), "ms-"+op+"-p50")
		b.ReportMetric(ms(pct(lat["hivelet/"+op], 0.99)), "ms-"+op+"-p99")
		b.ReportMetric(ms(r), "ms-"+op+"-p50-bridge")
		b.ReportMetric(ms(pct(lat["bridgenet/"+op], 0.99)), "ms-"+op+"-p99-bridge")
		b.ReportMetric(float64(h)/float64(r), op+"-p50-hivelet/bridge")
	}
}

func pct(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
