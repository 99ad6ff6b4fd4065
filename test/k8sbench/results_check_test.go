package k8sbench

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriteResults(t *testing.T) {
	dir := t.TempDir()
	if d := os.Getenv("KEEP"); d != "" {
		dir = d
	}
	rs := []result{
		{Proxy: "hivelet", Services: 1000, Sync: 250 * time.Millisecond, FullSync: 40 * time.Millisecond, P50: 7 * time.Millisecond, P99: 14 * time.Millisecond, RSSMiB: 44},
		{Proxy: "hivelet", Services: 10000, Sync: 450 * time.Millisecond, P50: 8 * time.Millisecond, P99: 18 * time.Millisecond, RSSMiB: 88},
		{Proxy: "kube-proxy-nftables", Services: 1000, Sync: 3 * time.Second, FullSync: 1500 * time.Millisecond, P50: 300 * time.Millisecond, P99: 400 * time.Millisecond, RSSMiB: 120},
	}
	if err := writeResults(dir, rs); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range []string{"| 1000 | hivelet | 0.25 s | 0.040 s | 7.0 ms | 14.0 ms | 44 MiB |", "| 1000 | kube-proxy-nftables | 3.00 s | 1.500 s | 300.0 ms | 400.0 ms | 120 MiB |"} {
		if !strings.Contains(string(md), row) {
			t.Errorf("table lacks row %q:\n%s", row, md)
		}
	}
	f, err := os.Open(filepath.Join(dir, "results.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("chart is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 800 || b.Dy() < 300 {
		t.Errorf("chart is %v, want a two-panel figure", b)
	}
}
