// Package metrics is the kubelet's own /metrics: the upstream kubelet's
// metric names for what kubelet-lite does (runtime operations, relists,
// pods and containers started and running, the process), written in the
// Prometheus text format by hand. The Prometheus client library would
// add several MiB to a process whose whole footprint is a few tens.
package metrics

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Buckets of the duration histograms, the upstream kubelet's.
var (
	RuntimeBuckets = []float64{.005, .0125, .03125, .078125, .1953125, .48828125, 1.220703125, 3.0517578125, 7.62939453125, 19.073486328125, 47.6837158203125, 119.20928955078125, 298.0232238769531, 745.0580596923828}
	RelistBuckets  = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	PodBuckets     = []float64{.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600}
)

// family is one metric name: its help, type and series by label values.
type family struct {
	name, help, kind string
	labels           []string
	buckets          []float64

	mu     sync.Mutex
	series map[string]*series // joined label values → series; guarded by mu
}

type series struct {
	values []string
	value  float64  // counter or gauge
	counts []uint64 // histogram: per bucket, not cumulative
	sum    float64  // histogram
	count  uint64   // histogram
}

func (f *family) get(values []string) *series {
	if len(values) != len(f.labels) {
		panic(fmt.Sprintf("metric %s: %d label values for %d labels", f.name, len(values), len(f.labels)))
	}
	key := strings.Join(values, "\xff")
	s := f.series[key]
	if s == nil {
		s = &series{values: slices.Clone(values)}
		if f.kind == "histogram" {
			s.counts = make([]uint64, len(f.buckets))
		}
		f.series[key] = s
	}
	return s
}

// Counter only goes up.
type Counter struct{ f *family }

// Inc adds one to the series of the label values.
func (c Counter) Inc(values ...string) {
	c.f.mu.Lock()
	c.f.get(values).value++
	c.f.mu.Unlock()
}

// Gauge is set to what it measures.
type Gauge struct{ f *family }

// Set replaces the series of the label values.
func (g Gauge) Set(v float64, values ...string) {
	g.f.mu.Lock()
	g.f.get(values).value = v
	g.f.mu.Unlock()
}

// Reset drops every series: for gauges recomputed whole, so that a label
// value that no longer occurs does not linger.
func (g Gauge) Reset() {
	g.f.mu.Lock()
	clear(g.f.series)
	g.f.mu.Unlock()
}

// Histogram counts observations into buckets.
type Histogram struct{ f *family }

// Observe records v (seconds, for the durations) for the label values.
func (h Histogram) Observe(v float64, values ...string) {
	i := sort.SearchFloat64s(h.f.buckets, v) // first bucket with le >= v
	h.f.mu.Lock()
	s := h.f.get(values)
	if i < len(s.counts) {
		s.counts[i]++
	}
	s.sum += v
	s.count++
	h.f.mu.Unlock()
}

// Since observes the seconds since t.
func (h Histogram) Since(t time.Time, values ...string) {
	h.Observe(time.Since(t).Seconds(), values...)
}

// Registry holds families in the order they were made.
type Registry struct {
	mu       sync.Mutex
	families []*family
	collect  []func() // run before each write: refresh gauges
}

func (r *Registry) add(name, help, kind string, buckets []float64, labels []string) *family {
	f := &family{name: name, help: help, kind: kind, labels: labels, buckets: buckets, series: map[string]*series{}}
	r.mu.Lock()
	r.families = append(r.families, f)
	r.mu.Unlock()
	return f
}

// NewCounter registers a counter.
func (r *Registry) NewCounter(name, help string, labels ...string) Counter {
	return Counter{r.add(name, help, "counter", nil, labels)}
}

// NewGauge registers a gauge.
func (r *Registry) NewGauge(name, help string, labels ...string) Gauge {
	return Gauge{r.add(name, help, "gauge", nil, labels)}
}

// NewHistogram registers a histogram with the given upper bounds.
func (r *Registry) NewHistogram(name, help string, buckets []float64, labels ...string) Histogram {
	return Histogram{r.add(name, help, "histogram", buckets, labels)}
}

// OnCollect runs fn before every write, to set gauges that are read
// rather than counted.
func (r *Registry) OnCollect(fn func()) {
	r.mu.Lock()
	r.collect = append(r.collect, fn)
	r.mu.Unlock()
}

// Write writes every family in the Prometheus text format (0.0.4),
// series sorted by their label values.
func (r *Registry) Write(w io.Writer) error {
	r.mu.Lock()
	fams, collect := slices.Clone(r.families), slices.Clone(r.collect)
	r.mu.Unlock()
	for _, fn := range collect {
		fn()
	}
	var b strings.Builder
	for _, f := range fams {
		f.mu.Lock()
		keys := make([]string, 0, len(f.series))
		for k := range f.series {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if len(keys) > 0 {
			fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", f.name, f.help, f.name, f.kind)
		}
		for _, k := range keys {
			s := f.series[k]
			if f.kind != "histogram" {
				fmt.Fprintf(&b, "%s%s %s\n", f.name, labelText(f.labels, s.values, "", ""), num(s.value))
				continue
			}
			var cum uint64
			for i, le := range f.buckets {
				cum += s.counts[i]
				fmt.Fprintf(&b, "%s_bucket%s %d\n", f.name, labelText(f.labels, s.values, "le", num(le)), cum)
			}
			fmt.Fprintf(&b, "%s_bucket%s %d\n", f.name, labelText(f.labels, s.values, "le", "+Inf"), s.count)
			fmt.Fprintf(&b, "%s_sum%s %s\n", f.name, labelText(f.labels, s.values, "", ""), num(s.sum))
			fmt.Fprintf(&b, "%s_count%s %d\n", f.name, labelText(f.labels, s.values, "", ""), s.count)
		}
		f.mu.Unlock()
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func labelText(names, values []string, extraName, extraValue string) string {
	if len(names) == 0 && extraName == "" {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", n, escape(values[i]))
	}
	if extraName != "" {
		if len(names) > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", extraName, extraValue)
	}
	b.WriteByte('}')
	return b.String()
}

// escape keeps a label value to what %q then writes as the text format
// wants: backslash, quote and newline escaped, nothing else.
func escape(v string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\n' || r == 0x7f {
			return -1
		}
		return r
	}, strings.ToValidUTF8(v, ""))
}

func num(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return fmt.Sprintf("%g", v)
}
