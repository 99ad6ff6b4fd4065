// Package stats serves the kubelet's resource usage: the summary API
// (/stats/summary, what `kubectl top` reads through metrics-server and
// what eviction looks at) and /metrics/resource, built from the node's
// /proc and statfs and the runtime's CRI stats.
package stats

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/hivelet/hivelet/kubelet-lite/cri"
	"github.com/hivelet/hivelet/kubelet-lite/eviction"
)

// Labels that name a container's pod, the upstream kubelet's.
const (
	labelPodUID       = "io.kubernetes.pod.uid"
	labelPodName      = "io.kubernetes.pod.name"
	labelPodNamespace = "io.kubernetes.pod.namespace"
	labelContainer    = "io.kubernetes.container.name"
)

// userHZ is the kernel's clock tick for /proc/stat (100 on Linux).
const userHZ = 100

// Provider computes summaries; it remembers the last CPU sample of the
// node and each container, for usage rates.
type Provider struct {
	Node    string
	RootDir string
	RT      *cri.Client
	start   time.Time

	mu   sync.Mutex
	prev map[string]cpuSample // guarded by mu; by container id, "" for the node
}

type cpuSample struct {
	at    time.Time
	total uint64 // core-nanoseconds
}

// NewProvider returns a Provider for this node.
func NewProvider(node, rootDir string, rt *cri.Client) *Provider {
	return &Provider{Node: node, RootDir: rootDir, RT: rt, start: time.Now(), prev: map[string]cpuSample{}}
}

// Summary is the node's and each pod's usage now.
func (p *Provider) Summary(ctx context.Context) (*statsapi.Summary, error) {
	now := metav1.Now()
	s := &statsapi.Summary{Node: statsapi.NodeStats{NodeName: p.Node, StartTime: metav1.NewTime(p.start)}}
	if cpu, err := nodeCPU(); err == nil {
		s.Node.CPU = p.cpu("", now, cpu)
	}
	s.Node.Memory = nodeMemory(now)
	s.Node.Fs = fsStats(p.RootDir, now)
	rl := &statsapi.RlimitStats{Time: now}
	if b, err := os.ReadFile("/proc/sys/kernel/pid_max"); err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			rl.MaxPID = &v
		}
	}
	s.Node.Rlimit = rl
	cctx, cancel := cri.Ctx(ctx)
	defer cancel()
	if fs, err := p.RT.Images.ImageFsInfo(cctx, &runtimeapi.ImageFsInfoRequest{}); err == nil && len(fs.ImageFilesystems) > 0 {
		u := fs.ImageFilesystems[0]
		s.Node.Runtime = &statsapi.RuntimeStats{ImageFs: &statsapi.FsStats{Time: now, UsedBytes: ptr(u.GetUsedBytes().GetValue()), InodesUsed: ptr(u.GetInodesUsed().GetValue())}}
	}
	list, err := p.RT.Runtime.ListContainerStats(cctx, &runtimeapi.ListContainerStatsRequest{})
	if err != nil {
		return nil, fmt.Errorf("container stats: %w", err)
	}
	cs, err := p.RT.Runtime.ListContainers(cctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	created := map[string]int64{}
	for _, c := range cs.Containers {
		created[c.Id] = c.CreatedAt
	}
	pods := map[string]*statsapi.PodStats{}
	var order []string
	seen := map[string]bool{}
	for _, st := range list.Stats {
		a := st.Attributes
		at, ok := created[a.GetId()]
		if !ok || a.Labels[labelPodUID] == "" {
			continue // not running, or not a pod's
		}
		seen[a.Id] = true
		uid := a.Labels[labelPodUID]
		ps := pods[uid]
		if ps == nil {
			ps = &statsapi.PodStats{PodRef: statsapi.PodReference{Name: a.Labels[labelPodName], Namespace: a.Labels[labelPodNamespace], UID: uid},
				StartTime: metav1.NewTime(time.Unix(0, at))}
			pods[uid] = ps
			order = append(order, uid)
		}
		c := statsapi.ContainerStats{Name: a.Labels[labelContainer], StartTime: metav1.NewTime(time.Unix(0, at))}
		if cpu := st.GetCpu(); cpu != nil && cpu.UsageCoreNanoSeconds != nil {
			c.CPU = p.cpu(a.Id, now, cpu.UsageCoreNanoSeconds.Value)
		}
		if m := st.GetMemory(); m != nil {
			c.Memory = &statsapi.MemoryStats{Time: now, WorkingSetBytes: ptr(m.GetWorkingSetBytes().GetValue()), UsageBytes: ptr(m.GetUsageBytes().GetValue()),
				RSSBytes: ptr(m.GetRssBytes().GetValue()), PageFaults: ptr(m.GetPageFaults().GetValue()), MajorPageFaults: ptr(m.GetMajorPageFaults().GetValue())}
		}
		if fs := st.GetWritableLayer(); fs != nil {
			c.Rootfs = &statsapi.FsStats{Time: now, UsedBytes: ptr(fs.GetUsedBytes().GetValue()), InodesUsed: ptr(fs.GetInodesUsed().GetValue())}
		}
		ps.Containers = append(ps.Containers, c)
		if ps.StartTime.Time.After(c.StartTime.Time) {
			ps.StartTime = c.StartTime
		}
	}
	for _, uid := range order {
		ps := pods[uid]
		ps.CPU, ps.Memory = sumPod(ps.Containers, now)
		s.Pods = append(s.Pods, *ps)
	}
	p.forget(seen)
	return s, nil
}

// cpu turns a cumulative sample into CPUStats, with the rate since the
// previous sample of the same id.
func (p *Provider) cpu(id string, now metav1.Time, total uint64) *statsapi.CPUStats {
	out := &statsapi.CPUStats{Time: now, UsageCoreNanoSeconds: ptr(total)}
	p.mu.Lock()
	defer p.mu.Unlock()
	if prev, ok := p.prev[id]; ok && now.Time.After(prev.at) && total >= prev.total {
		rate := uint64(float64(total-prev.total) / now.Time.Sub(prev.at).Seconds())
		out.UsageNanoCores = &rate
	}
	p.prev[id] = cpuSample{at: now.Time, total: total}
	return out
}

// forget drops the samples of containers that are gone.
func (p *Provider) forget(live map[string]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id := range p.prev {
		if id != "" && !live[id] {
			delete(p.prev, id)
		}
	}
}

func sumPod(cs []statsapi.ContainerStats, now metav1.Time) (*statsapi.CPUStats, *statsapi.MemoryStats) {
	cpu := &statsapi.CPUStats{Time: now, UsageCoreNanoSeconds: ptr(uint64(0)), UsageNanoCores: ptr(uint64(0))}
	mem := &statsapi.MemoryStats{Time: now, WorkingSetBytes: ptr(uint64(0)), UsageBytes: ptr(uint64(0))}
	for _, c := range cs {
		if c.CPU != nil {
			*cpu.UsageCoreNanoSeconds += val(c.CPU.UsageCoreNanoSeconds)
			*cpu.UsageNanoCores += val(c.CPU.UsageNanoCores)
		}
		if c.Memory != nil {
			*mem.WorkingSetBytes += val(c.Memory.WorkingSetBytes)
			*mem.UsageBytes += val(c.Memory.UsageBytes)
		}
	}
	return cpu, mem
}

// nodeCPU is the node's busy time in core-nanoseconds from /proc/stat.
func nodeCPU() (uint64, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, fmt.Errorf("read /proc/stat: empty")
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, fmt.Errorf("read /proc/stat: unexpected %q", sc.Text())
	}
	var busy uint64
	for i, f := range fields[1:] {
		v, _ := strconv.ParseUint(f, 10, 64)
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest time is already in user time
			break
		}
		busy += v
	}
	return busy * (1e9 / userHZ), nil
}

// nodeMemory is the node's memory as the eviction manager sees it
// (working set: usage less inactive file pages).
func nodeMemory(now metav1.Time) *statsapi.MemoryStats {
	m, err := eviction.ReadMemory()
	if err != nil {
		return nil
	}
	return &statsapi.MemoryStats{Time: now, AvailableBytes: ptr(m.Available()), UsageBytes: ptr(m.Total - m.Free), WorkingSetBytes: ptr(m.WorkingSet())}
}

func fsStats(path string, now metav1.Time) *statsapi.FsStats {
	if path == "" {
		path = "/"
	}
	var st unix.Statfs_t
	if unix.Statfs(path, &st) != nil {
		return nil
	}
	bs := uint64(st.Bsize)
	return &statsapi.FsStats{Time: now, CapacityBytes: ptr(st.Blocks * bs), AvailableBytes: ptr(st.Bavail * bs), UsedBytes: ptr((st.Blocks - st.Bfree) * bs),
		Inodes: ptr(st.Files), InodesFree: ptr(st.Ffree), InodesUsed: ptr(st.Files - st.Ffree)}
}

func ptr[T any](v T) *T { return &v }

func val(p *uint64) uint64 {
	if p == nil {
		return 0
	}
	return *p
}
