package kubelet

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/hivelet/hivelet/test/harness"
)

// apiLatency measures, through the node's kubelet API, the round trip of
// an exec of `true` and the time to the first byte of `logs -f`, n times
// each, on a running pod.
func apiLatency(b *testing.B, e *env, n int) (exec, logsFirst, healthz []time.Duration) {
	e.create(b, "bench-api", corev1.RestartPolicyAlways, corev1.Container{Command: []string{"sh", "-c", "echo ready; exec sleep 3600"}})
	e.waitPod(b, "bench-api", "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	cfg := e.kubeletAPI(b)
	tr, err := rest.TransportFor(cfg)
	if err != nil {
		b.Fatal(err)
	}
	for range n {
		start := time.Now()
		if _, _, err := kubeletExec(b, cfg, e.ns, "bench-api", "main", "", "true"); err != nil {
			b.Fatalf("exec: %v", err)
		}
		exec = append(exec, time.Since(start))
	}
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/containerLogs/%s/bench-api/main?follow=true", cfg.Host, e.ns), nil)
		start := time.Now()
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			cancel()
			b.Fatalf("logs -f: %v", err)
		}
		buf := make([]byte, 1)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			cancel()
			b.Fatalf("logs -f first byte: %v", err)
		}
		logsFirst = append(logsFirst, time.Since(start))
		resp.Body.Close()
		cancel()
	}
	// The floor both share: a TLS connection and one plain request.
	for range n {
		start := time.Now()
		req, _ := http.NewRequest(http.MethodGet, cfg.Host+"/healthz", nil)
		req.Close = true // a new connection each time, as for the others
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			b.Fatalf("healthz: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		healthz = append(healthz, time.Since(start))
	}
	return exec, logsFirst, healthz
}

// apiMeasure fills the node to benchPods pods (29 plain ones and the one
// apiLatency streams from), measures the kubelet API on it, and then
// reads the kubelet's RSS, with the API server and streaming used.
func apiMeasure(b *testing.B, e *env, n int) (exec, logsFirst, healthz []time.Duration, rss float64) {
	ctx := context.Background()
	for i := range benchPods - 1 {
		if _, err := e.client.CoreV1().Pods(e.ns).Create(ctx, benchPod(e.ns, fmt.Sprintf("fill-%d", i), e.node), metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range benchPods - 1 {
		e.waitPod(b, fmt.Sprintf("fill-%d", i), "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	}
	exec, logsFirst, healthz = apiLatency(b, e, n)
	pid := e.kubelet.Cmd.Process.Pid
	rss, err := harness.RSSMiB(pid)
	if err != nil {
		b.Fatal(err)
	}
	if anon, file, err := harness.RSSPartsMiB(pid); err == nil {
		b.Logf("%s with %d pods after streaming: RSS %.1f MiB: anonymous %.1f, file-backed %.1f", filepath.Base(e.bin), benchPods, rss, anon, file)
	}
	return exec, logsFirst, healthz, rss
}

// BenchmarkKubeletAPI: `kubectl exec` round trip and `kubectl logs -f`
// first byte, straight at the kubelet API (the API server's proxy hop
// left out), with 30 pods on the node, and the RSS after; kubelet-lite
// against the upstream kubelet on the same containerd when it is built
// (`hack/k8s.sh build-kubelet`), same run.
func BenchmarkKubeletAPI(b *testing.B) {
	const n = 20
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	for range b.N {
		lite := newBenchEnv(b, "lite")
		le, ll, lh, lrss := apiMeasure(b, lite, n)
		b.ReportMetric(ms(harness.Percentile(le, 0.5)), "lite-exec-p50-ms")
		b.ReportMetric(ms(harness.Percentile(ll, 0.5)), "lite-logsf-p50-ms")
		b.ReportMetric(ms(harness.Percentile(lh, 0.5)), "lite-healthz-p50-ms")
		b.ReportMetric(lrss, "lite-rss-30pods-MiB")
		if up := upstreamKubelet(); up != "" {
			ue, ul, uh, urss := apiMeasure(b, newBenchEnv(b, "upstream"), n)
			b.ReportMetric(ms(harness.Percentile(ue, 0.5)), "upstream-exec-p50-ms")
			b.ReportMetric(ms(harness.Percentile(ul, 0.5)), "upstream-logsf-p50-ms")
			b.ReportMetric(ms(harness.Percentile(uh, 0.5)), "upstream-healthz-p50-ms")
			b.ReportMetric(urss, "upstream-rss-30pods-MiB")
			b.ReportMetric(float64(harness.Percentile(le, 0.5))/float64(harness.Percentile(ue, 0.5)), "exec-lite/upstream")
			b.ReportMetric(float64(harness.Percentile(ll, 0.5))/float64(harness.Percentile(ul, 0.5)), "logsf-lite/upstream")
		}
	}
}
