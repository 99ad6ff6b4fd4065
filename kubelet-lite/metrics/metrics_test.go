package metrics

import (
	"strings"
	"testing"
)

func TestWriteTextFormat(t *testing.T) {
	r := &Registry{}
	c := r.NewCounter("ops_total", "Ops.", "op")
	g := r.NewGauge("up", "Up.")
	h := r.NewHistogram("lat_seconds", "Latency.", []float64{0.1, 1}, "op")
	r.NewCounter("never_total", "Not written: no series.")
	c.Inc("list")
	c.Inc("list")
	c.Inc("a\"b\nc\x01")
	g.Set(1)
	h.Observe(0.05, "x")
	h.Observe(0.1, "x") // le is inclusive
	h.Observe(5, "x")
	var b strings.Builder
	if err := r.Write(&b); err != nil {
		t.Fatal(err)
	}
	want := `# HELP ops_total Ops.
# TYPE ops_total counter
ops_total{op="a\"b\nc"} 1
ops_total{op="list"} 2
# HELP up Up.
# TYPE up gauge
up 1
# HELP lat_seconds Latency.
# TYPE lat_seconds histogram
lat_seconds_bucket{op="x",le="0.1"} 2
lat_seconds_bucket{op="x",le="1"} 2
lat_seconds_bucket{op="x",le="+Inf"} 3
lat_seconds_sum{op="x"} 5.15
lat_seconds_count{op="x"} 3
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestKubeletProcessMetrics(t *testing.T) {
	var b strings.Builder
	if err := Kubelet.Write(&b); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"process_resident_memory_bytes ", "process_start_time_seconds ", "go_goroutines ", "process_open_fds "} {
		if !strings.Contains(b.String(), "\n"+name) {
			t.Errorf("%s missing from\n%s", name, b.String())
		}
	}
	if strings.Contains(b.String(), "process_resident_memory_bytes 0\n") {
		t.Error("RSS read as 0")
	}
}

func BenchmarkCounterInc(b *testing.B) {
	r := &Registry{}
	c := r.NewCounter("ops_total", "Ops.", "op")
	for b.Loop() {
		c.Inc("list_containers")
	}
}
