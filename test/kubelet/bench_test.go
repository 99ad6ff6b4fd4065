package kubelet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"

	"github.com/hivelet/hivelet/test/containerd"
	"github.com/hivelet/hivelet/test/harness"
)

const benchPods = 30

func benchPod(ns, name, node string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: corev1.PodSpec{
		NodeName: node, TerminationGracePeriodSeconds: ptr.To(int64(0)), AutomountServiceAccountToken: ptr.To(false),
		Containers: []corev1.Container{{Name: "main", Image: containerd.BusyboxRef, ImagePullPolicy: corev1.PullIfNotPresent,
			Command: []string{"sleep", "3600"}}}}}
}

// runningTimes watches ns and reports when each pod is first Running.
// The watch starts from resourceVersion "0": this API server on etcd 3.4
// refuses watches from "" after a while. It is re-opened when it ends.
func runningTimes(ctx context.Context, e *env, mu *sync.Mutex) (map[string]time.Time, func()) {
	ctx, cancel := context.WithCancel(ctx)
	seen := map[string]time.Time{}
	go func() {
		for ctx.Err() == nil {
			w, err := e.client.CoreV1().Pods(e.ns).Watch(ctx, metav1.ListOptions{ResourceVersion: "0"})
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type != watch.Deleted && p.Status.Phase == corev1.PodRunning {
					mu.Lock()
					if _, ok := seen[p.Name]; !ok {
						seen[p.Name] = time.Now()
					}
					mu.Unlock()
				}
			}
		}
	}()
	return seen, cancel
}

// kubeletStart measures API create → Running for pods one by one, then
// all at once, on a node run by the kubelet args start.
func kubeletStart(b *testing.B, e *env) (oneByOne []time.Duration, allAtOnce time.Duration, rss float64) {
	ctx := context.Background()
	var mu sync.Mutex
	seen, stop := runningTimes(ctx, e, &mu)
	defer stop()
	waitRunning := func(names ...string) time.Time {
		deadline := time.Now().Add(3 * time.Minute)
		for time.Now().Before(deadline) {
			mu.Lock()
			var last time.Time
			all := true
			for _, n := range names {
				t, ok := seen[n]
				all = all && ok
				if t.After(last) {
					last = t
				}
			}
			mu.Unlock()
			if all {
				return last
			}
			time.Sleep(5 * time.Millisecond)
		}
		b.Fatalf("pods %v not Running within 3 min\nkubelet log:\n%s", names, harness.Tail(e.kubelet.Log(), 30))
		return time.Time{}
	}
	for i := range benchPods {
		name := fmt.Sprintf("one-%d", i)
		start := time.Now()
		if _, err := e.client.CoreV1().Pods(e.ns).Create(ctx, benchPod(e.ns, name, e.node), metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		oneByOne = append(oneByOne, waitRunning(name).Sub(start))
	}
	var names []string
	start := time.Now()
	for i := range benchPods {
		name := fmt.Sprintf("all-%d", i)
		names = append(names, name)
		if _, err := e.client.CoreV1().Pods(e.ns).Create(ctx, benchPod(e.ns, name, e.node), metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	allAtOnce = waitRunning(names...).Sub(start)
	pid := e.kubelet.Cmd.Process.Pid
	rss, err := harness.RSSMiB(pid)
	if err != nil {
		b.Fatal(err)
	}
	if anon, file, err := harness.RSSPartsMiB(pid); err == nil {
		b.Logf("%s RSS %.1f MiB: anonymous %.1f, file-backed %.1f", filepath.Base(e.bin), rss, anon, file)
	}
	return oneByOne, allAtOnce, rss
}

// rawCRI starts the same pods with the CRI calls alone: the floor any
// kubelet sits on.
func rawCRI(b *testing.B, e *env) (oneByOne []time.Duration, allAtOnce time.Duration) {
	ctx := context.Background()
	run := func(name string) {
		sbCfg := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "raw", Uid: name},
			LogDirectory: filepath.Join(e.rt.Dir, "rawlogs", name)}
		sb, err := e.rt.RT.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbCfg})
		if err != nil {
			b.Error(err)
			return
		}
		c, err := e.rt.RT.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb.PodSandboxId, SandboxConfig: sbCfg,
			Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "main"},
				Image: &runtimeapi.ImageSpec{Image: containerd.BusyboxRef}, Command: []string{"sleep", "3600"}, LogPath: "main.log"}})
		if err != nil {
			b.Error(err)
			return
		}
		if _, err := e.rt.RT.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
			b.Error(err)
		}
	}
	for i := range benchPods {
		start := time.Now()
		run(fmt.Sprintf("raw-one-%d", i))
		oneByOne = append(oneByOne, time.Since(start))
	}
	var wg sync.WaitGroup
	start := time.Now()
	for i := range benchPods {
		wg.Add(1)
		go func() { defer wg.Done(); run(fmt.Sprintf("raw-all-%d", i)) }()
	}
	wg.Wait()
	return oneByOne, time.Since(start)
}

// BenchmarkPodStart: pod start latency (API create → status Running) for
// 30 pods one by one and 30 at once through kubelet-lite and, when built
// (`hack/k8s.sh build-kubelet`), the upstream kubelet on the same
// containerd build, against the raw CRI calls for the same pods, in the
// same run; RSS of each kubelet with its 60 pods.
func BenchmarkPodStart(b *testing.B) {
	report := func(prefix string, one []time.Duration, all time.Duration) {
		b.ReportMetric(float64(harness.Percentile(one, 0.5).Microseconds())/1000, prefix+"-p50-ms")
		b.ReportMetric(float64(harness.Percentile(one, 0.99).Microseconds())/1000, prefix+"-p99-ms")
		b.ReportMetric(all.Seconds(), prefix+"-all30-s")
	}
	for range b.N {
		e := newBenchEnv(b, "lite")
		one, all, rss := kubeletStart(b, e)
		report("kubelet-lite", one, all)
		b.ReportMetric(rss, "kubelet-lite-MiB")
		rone, rall := rawCRI(b, e)
		report("raw-cri", rone, rall)
		b.ReportMetric(float64(harness.Percentile(one, 0.5)-harness.Percentile(rone, 0.5))/1e6, "lite-minus-raw-p50-ms")
		if up := upstreamKubelet(); up != "" {
			eu := newBenchEnv(b, "upstream")
			uone, uall, urss := kubeletStart(b, eu)
			report("upstream", uone, uall)
			b.ReportMetric(urss, "upstream-MiB")
			b.ReportMetric(float64(harness.Percentile(one, 0.5))/float64(harness.Percentile(uone, 0.5)), "p50-lite/upstream")
			b.ReportMetric(all.Seconds()/uall.Seconds(), "all30-lite/upstream")
		}
	}
}

// upstreamKubelet is the path of the upstream kubelet built by
// hack/k8s.sh build-kubelet, or "" when it is not there or
// HIVELET_BENCH_UPSTREAM=0 leaves it out.
func upstreamKubelet() string {
	if os.Getenv("HIVELET_BENCH_UPSTREAM") == "0" {
		return ""
	}
	p := "/var/cache/hivelet-k8s/bin/kubelet"
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}
