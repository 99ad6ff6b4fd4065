package k8sbench

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// writeResults writes results.md (a table) and results.png (sync time
// and change latency against Service count, one line per proxy) to dir.
func writeResults(dir string, rs []result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(table(rs)), 0o644); err != nil {
		return err
	}
	return chart(filepath.Join(dir, "results.png"), rs)
}

func table(rs []result) string {
	var sb strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&sb, "# Service proxies against a real API server\n\n")
	fmt.Fprintf(&sb, "Measured %s on %s (%d CPUs) by `make bench-k8s`: kube-apiserver and kube-proxy v1.37.2 built by hack/k8s.sh, "+
		"N Services × 3 endpoints, every proxy against the same API server and objects in the same run.\n\n",
		time.Now().UTC().Format("2006-01-02"), host, runtime.NumCPU())
	sb.WriteString("| Services | proxy | start to programmed | full sync | change p50 | change p99 | RSS | API write p99 |\n")
	sb.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		fmt.Fprintf(&sb, "| %d | %s | %.2f s | %.3f s | %.1f ms | %.1f ms | %.0f MiB | %.1f ms |\n",
			r.Services, r.Proxy, r.Sync.Seconds(), r.FullSync.Seconds(), ms(r.P50), ms(r.P99), r.RSSMiB, ms(r.WriteP99))
	}
	sb.WriteString(`
- start to programmed: process start to every Service programmed (hivelet: its first full sync has written the
  pinned maps; kube-proxy: its first sync, which waits for its informers, has committed the ruleset).
- full sync: that first full sync alone, as the proxy reports it (hivelet: the duration its "Synced full=true" log
  line gives; kube-proxy: its kubeproxy_sync_full_proxy_rules_duration_seconds observation).
- change: one EndpointSlice edit from the start of the API write to programmed, 100 edits spaced 1.1 s apart (p50 and
  p99 by nearest rank: the 50th and 99th of the 100), each proxy started on an idle machine
  (beyond kube-proxy's default 1 s minimum sync interval). hivelet: the new backend is polled in the pinned
  maps from outside; kube-proxy: its network_programming_duration observation for the slice's
  last-change-trigger-time (set to the write's start), taken after the rules are committed; the last edit is
  then checked in the ruleset.
- kube-proxy runs with default settings in a network namespace of its own; iptables mode says which xtables
  backend its iptables commands used (legacy or nft).
- etcd runs from a copy of its data in /dev/shm (HIVELET_ETCD_TMPFS): this VM's disk flush stalls stay out of
  the API write, which every proxy's change latency includes.
- RSS: after the edits. API write p99: the write alone (etcd commit included), part of every change.
`)
	return sb.String()
}

func chart(path string, rs []result) error {
	var names []string
	for _, r := range rs {
		if !slices.Contains(names, r.Proxy) {
			names = append(names, r.Proxy)
		}
	}
	panel := func(title, ylabel string, y func(result) float64) (*plot.Plot, error) {
		p := plot.New()
		p.Title.Text = title
		p.X.Label.Text = "Services (× 3 endpoints)"
		p.Y.Label.Text = ylabel
		p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, logTicks{}
		p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, logTicks{}
		p.Legend.Top, p.Legend.Left = true, true
		p.X.Min, p.X.Max = math.Inf(1), 0
		p.Y.Min, p.Y.Max = math.Inf(1), 0
		for _, r := range rs {
			p.X.Min, p.X.Max = min(p.X.Min, float64(r.Services)/1.5), max(p.X.Max, float64(r.Services)*1.5)
			p.Y.Min, p.Y.Max = min(p.Y.Min, max(y(r), 1e-3)/2), max(p.Y.Max, y(r)*8) // headroom for the legend
		}
		p.Add(plotter.NewGrid())
		for i, name := range names {
			var pts plotter.XYs
			for _, r := range rs {
				if r.Proxy == name {
					pts = append(pts, plotter.XY{X: float64(r.Services), Y: max(y(r), 1e-3)})
				}
			}
			l, s, err := plotter.NewLinePoints(pts)
			if err != nil {
				return nil, err
			}
			c := palette[i%len(palette)]
			l.Color, l.Width = c, vg.Points(2)
			s.Color, s.Shape, s.Radius = c, draw.CircleGlyph{}, vg.Points(3)
			p.Add(l, s)
			p.Legend.Add(name, l, s)
		}
		return p, nil
	}
	sync, err := panel("Start to programmed", "seconds", func(r result) float64 { return r.Sync.Seconds() })
	if err != nil {
		return err
	}
	full, err := panel("First full sync (the proxy's own figure)", "seconds", func(r result) float64 { return r.FullSync.Seconds() })
	if err != nil {
		return err
	}
	change, err := panel("One EndpointSlice change, p99", "milliseconds", func(r result) float64 { return ms(r.P99) })
	if err != nil {
		return err
	}
	img := vgimg.New(18*vg.Inch, 4.5*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 3, PadX: vg.Inch / 4, PadTop: vg.Inch / 8, PadBottom: vg.Inch / 8, PadLeft: vg.Inch / 8, PadRight: vg.Inch / 8}
	sync.Draw(tiles.At(dc, 0, 0))
	full.Draw(tiles.At(dc, 1, 0))
	change.Draw(tiles.At(dc, 2, 0))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// logTicks marks 1, 2 and 5 of every decade with plain numbers (1k for
// thousands), readable where plot.LogTicks prints 1e+03.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v < lo || v > hi {
				continue
			}
			ts = append(ts, plot.Tick{Value: v, Label: human(v)})
		}
	}
	return ts
}

func human(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', -1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'g', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

var palette = []color.Color{
	color.RGBA{0x1b, 0x9e, 0x77, 0xff}, // hivelet
	color.RGBA{0xd9, 0x5f, 0x02, 0xff},
	color.RGBA{0x75, 0x70, 0xb3, 0xff},
	color.RGBA{0xe7, 0x29, 0x8a, 0xff},
}
