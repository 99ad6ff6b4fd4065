package kubelet

import (
	"fmt"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hivelet/hivelet/kubelet-lite/eviction"
	"github.com/hivelet/hivelet/test/harness"
)

// memWatch samples memory.available every 5 ms and times each dip
// below a line: from the first sample under it to the first back above
// it plus the hog's size, which is the hog killed.
type memWatch struct {
	mu     sync.Mutex
	line   uint64 // bytes
	ups    uint64
	dips   []time.Duration
	stop   chan struct{}
	inside time.Time
}

func watchMemory(line, recovered uint64) *memWatch {
	w := &memWatch{line: line, ups: recovered, stop: make(chan struct{})}
	go func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case now := <-t.C:
				m, err := eviction.ReadMemory()
				if err != nil {
					continue
				}
				a := m.Available()
				w.mu.Lock()
				switch {
				case w.inside.IsZero() && a < w.line:
					w.inside = now
				case !w.inside.IsZero() && a > w.ups:
					w.dips = append(w.dips, now.Sub(w.inside))
					w.inside = time.Time{}
				}
				w.mu.Unlock()
			}
		}
	}()
	return w
}

func (w *memWatch) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.dips)
}

// evictionReaction starts rounds hogs, one after the other, on a node
// whose memory.available threshold is memoryLine, and returns how long
// memory stayed under the threshold each time: the time the kubelet
// takes to notice and kill the hog.
// An error says the kubelet never brought memory back (the upstream one
// cannot evict on a machine where cAdvisor finds no file system info for
// the root device, as on this one).
func evictionReaction(b *testing.B, kind string, rounds int) ([]time.Duration, error) {
	line := memoryLine(b)
	threshold := fmt.Sprintf("memory.available<%dMi", line>>20)
	var e *env
	if kind == "upstream" {
		e = prepareNode(b, true, "", upstreamKubelet())
		for i, a := range e.args {
			if a == "--config" {
				raw, _ := os.ReadFile(e.args[i+1])
				raw = regexp.MustCompile(`(?m)^evictionHard:.*$`).ReplaceAll(raw,
					fmt.Appendf(nil, `evictionHard: {memory.available: "%dMi", nodefs.available: "1%%", imagefs.available: "1%%"}`, line>>20))
				if err := os.WriteFile(e.args[i+1], raw, 0o644); err != nil {
					b.Fatal(err)
				}
			}
		}
	} else {
		e = prepareNode(b, true, "", "")
		e.args = append(e.args, "--eviction-hard", threshold)
	}
	e.start()
	w := watchMemory(line, line+marginMiB<<19) // back above: half the margin over the line
	defer close(w.stop)
	for i := range rounds {
		name := fmt.Sprintf("hog-%d", i)
		e.runPod(b, name, nil, corev1.PodSpec{Containers: []corev1.Container{{Name: "hog", Command: hogCommand}}})
		for end := time.Now().Add(60 * time.Second); w.count() <= i; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(end) {
				return nil, fmt.Errorf("%s: memory stayed under %s for 60 s with a hog running\n%s", kind, threshold, harness.Tail(e.kubelet.Log(), 1500))
			}
		}
		// The next hog only once this one is gone for good.
		_ = e.client.CoreV1().Pods(e.ns).Delete(e.ctx, name, metav1.DeleteOptions{})
		time.Sleep(2 * time.Second)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration{}, w.dips...), nil
}

// BenchmarkEvictionReaction: how long a node stays under its
// memory.available threshold once a BestEffort hog crosses it, with
// kubelet-lite (checks every 250 ms) and, when built, the upstream kubelet (10 s
// housekeeping) on the same machine in the same run.
func BenchmarkEvictionReaction(b *testing.B) {
	const rounds = 5
	report := func(prefix string, ds []time.Duration) {
		b.ReportMetric(float64(harness.Percentile(ds, 0.5).Milliseconds()), prefix+"-p50-ms")
		b.ReportMetric(float64(harness.Percentile(ds, 0.99).Milliseconds()), prefix+"-max-ms")
	}
	for range b.N {
		lite, err := evictionReaction(b, "lite", rounds)
		if err != nil {
			b.Fatal(err)
		}
		report("lite", lite)
		if up := upstreamKubelet(); up != "" {
			ups, err := evictionReaction(b, "upstream", rounds)
			if err != nil {
				b.Logf("the upstream kubelet did not evict: %v", err)
				b.ReportMetric(0, "upstream-evicted")
				continue
			}
			report("upstream", ups)
			b.ReportMetric(float64(harness.Percentile(lite, 0.5))/float64(harness.Percentile(ups, 0.5)), "p50-lite/upstream")
		}
	}
}
