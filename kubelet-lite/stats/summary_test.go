package stats

import (
	"context"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	fake "k8s.io/cri-api/pkg/apis/testing"

	"github.com/hivelet/hivelet/kubelet-lite/cri/critest"
)

func TestSummaryAndResourceMetrics(t *testing.T) {
	rt, client := critest.New()
	now := time.Now().UnixNano()
	labels := map[string]string{labelPodUID: "u1", labelPodName: "web", labelPodNamespace: `team"a`, labelContainer: "main"}
	rt.RT.SetFakeContainers([]*fake.FakeContainer{{ContainerStatus: runtimeapi.ContainerStatus{Id: "c1", Metadata: &runtimeapi.ContainerMetadata{Name: "main"},
		State: runtimeapi.ContainerState_CONTAINER_RUNNING, CreatedAt: now, Labels: labels}, SandboxID: "s1"}})
	stat := func(cpu uint64) {
		rt.RT.SetFakeContainerStats([]*runtimeapi.ContainerStats{{Attributes: &runtimeapi.ContainerAttributes{Id: "c1", Labels: labels},
			Cpu:    &runtimeapi.CpuUsage{UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: cpu}},
			Memory: &runtimeapi.MemoryUsage{WorkingSetBytes: &runtimeapi.UInt64Value{Value: 4 << 20}}}})
	}
	p := NewProvider("node-1", t.TempDir(), client)
	stat(1e9)
	s, err := p.Summary(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.Node.NodeName != "node-1" || s.Node.Memory == nil || *s.Node.Memory.WorkingSetBytes == 0 || s.Node.CPU == nil || s.Node.Fs == nil {
		t.Errorf("node stats %+v", s.Node)
	}
	if len(s.Pods) != 1 || s.Pods[0].PodRef.Name != "web" || len(s.Pods[0].Containers) != 1 || *s.Pods[0].Memory.WorkingSetBytes != 4<<20 {
		t.Fatalf("pods %+v", s.Pods)
	}
	if s.Pods[0].Containers[0].CPU.UsageNanoCores != nil {
		t.Error("a rate from a single sample")
	}
	time.Sleep(20 * time.Millisecond)
	stat(1e9 + 1e7) // 10 ms of CPU since
	s, _ = p.Summary(context.Background())
	if r := s.Pods[0].Containers[0].CPU.UsageNanoCores; r == nil || *r == 0 {
		t.Errorf("no CPU rate from two samples: %v", r)
	}
	var b strings.Builder
	if err := WriteResourceMetrics(&b, s); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`container_memory_working_set_bytes{container="main",namespace="team\"a",pod="web"} 4194304 `,
		`pod_memory_working_set_bytes{namespace="team\"a",pod="web"} 4194304 `,
		"# TYPE node_cpu_usage_seconds_total counter\nnode_cpu_usage_seconds_total ",
		"resource_scrape_error 0\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, b.String())
		}
	}
}
