package eviction

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/hivelet/hivelet/kubelet-lite/metrics"
)

// hardGrace is the grace period of a pod evicted for a hard threshold,
// upstream's immediate eviction.
const hardGrace = 1

// cleanupWait bounds the wait for an evicted pod to stop before the next
// observation, as upstream waits before it evicts again: what the pod
// frees shows only once it is gone.
const cleanupWait = 30 * time.Second

var evictions = metrics.Kubelet.NewCounter("kubelet_evictions",
	"Cumulative number of pod evictions by eviction signal", "eviction_signal")

// Pods is the pod manager as the eviction manager uses it.
type Pods interface {
	// Active are the pods admitted and not finished.
	Active() []*corev1.Pod
	// Evict stops a pod within grace seconds and fails it as Evicted.
	Evict(uid types.UID, message string, grace int64) bool
}

// PodMemory is a pod's memory working set, in all and by container.
type PodMemory struct {
	Total      uint64
	Containers map[string]uint64
}

// Config is the eviction policy, upstream's flags.
type Config struct {
	Hard, Soft []Threshold
	// SoftGrace is how long a soft threshold must hold before it evicts
	// (--eviction-soft-grace-period); a soft threshold needs one.
	SoftGrace map[Signal]time.Duration
	// MaxPodGrace caps the grace period of a pod evicted for a soft
	// threshold (--eviction-max-pod-grace-period; 0 or less: the pod's own).
	MaxPodGrace int64
	// MinReclaim is what must be freed beyond the threshold before the
	// pressure ends (--eviction-minimum-reclaim).
	MinReclaim []Threshold
	// Interval is how often memory is looked at (250 ms by default: a
	// memory hog is stopped before the kernel's OOM killer picks at
	// random, where upstream's 10 s housekeeping often comes too late;
	// reading /proc/meminfo costs microseconds, so this works the same
	// on cgroup v1 and v2 without memcg threshold notifications).
	Interval time.Duration
	// Critical pods are never evicted (static and system-critical ones).
	Critical func(*corev1.Pod) bool
}

// Manager evicts pods when memory.available falls below a threshold:
// one pod at a time, the one that ranks first as upstream ranks them
// (usage over requests first, then lower priority, then usage above
// requests), waiting for it to stop before looking again.
type Manager struct {
	cfg    Config
	pods   Pods
	usage  func(context.Context) (map[types.UID]PodMemory, error)
	memory func() (Memory, error)
	log    *slog.Logger
	now    func() time.Time

	softSince time.Time // when the soft memory threshold was first met; zero when not
	pressured bool      // a threshold was met at the last look: minimum reclaim applies
	stuck     bool      // told already that no pod can be evicted
}

// NewManager returns a manager; usage reads the pods' memory (only
// under pressure).
func NewManager(cfg Config, pods Pods, usage func(context.Context) (map[types.UID]PodMemory, error), log *slog.Logger) *Manager {
	if cfg.Interval <= 0 {
		cfg.Interval = 250 * time.Millisecond
	}
	if cfg.Critical == nil {
		cfg.Critical = func(*corev1.Pod) bool { return false }
	}
	return &Manager{cfg: cfg, pods: pods, usage: usage, memory: ReadMemory, log: log, now: time.Now}
}

// Run watches memory until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		if uid := m.synchronize(ctx); uid != "" {
			m.waitGone(ctx, uid)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// waitGone waits until the pod is no longer active, or cleanupWait.
func (m *Manager) waitGone(ctx context.Context, uid types.UID) {
	end := m.now().Add(cleanupWait)
	for m.now().Before(end) && ctx.Err() == nil {
		if !slices.ContainsFunc(m.pods.Active(), func(p *corev1.Pod) bool { return p.UID == uid }) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// synchronize looks at memory once and evicts at most one pod, returning
// its UID.
func (m *Manager) synchronize(ctx context.Context) types.UID {
	mem, err := m.memory()
	if err != nil || mem.Total == 0 {
		return ""
	}
	avail := int64(mem.Available())
	t, grace, ok := m.threshold(avail, int64(mem.Total))
	m.pressured = ok
	if !ok {
		m.stuck = false
		return ""
	}
	pods := slices.DeleteFunc(m.pods.Active(), m.cfg.Critical)
	if len(pods) == 0 {
		if !m.stuck {
			m.log.Warn("Memory is below the eviction threshold and no pod can be evicted", "threshold", t.String(), "available", avail)
		}
		m.stuck = true
		return ""
	}
	m.stuck = false
	usage, err := m.usage(ctx)
	if err != nil {
		m.log.Warn("Reading pod memory for eviction failed; ranking without it", "error", err)
	}
	rankMemory(pods, usage)
	victim := pods[0]
	g := grace
	if g < 0 { // soft: the pod's own, capped
		g = corev1.DefaultTerminationGracePeriodSeconds
		if victim.Spec.TerminationGracePeriodSeconds != nil {
			g = *victim.Spec.TerminationGracePeriodSeconds
		}
		if m.cfg.MaxPodGrace > 0 {
			g = min(g, m.cfg.MaxPodGrace)
		}
	}
	msg := message(t, int64(mem.Total), avail, victim, usage[victim.UID])
	if !m.pods.Evict(victim.UID, msg, g) {
		return ""
	}
	evictions.Inc(string(t.Signal))
	m.log.Warn("Evicted a pod: memory below the eviction threshold", "pod", victim.Namespace+"/"+victim.Name, "threshold", t.String(),
		"available", avail, "gracePeriod", g)
	return victim.UID
}

// threshold returns the memory threshold that is met now, hard first,
// with the grace period it evicts with (-1: the pod's own, capped).
// While under pressure the minimum reclaim is added, so the node does
// not hover just below the line.
func (m *Manager) threshold(avail, capacity int64) (Threshold, int64, bool) {
	met := func(t Threshold) bool {
		line := t.Value(capacity)
		if r, ok := Find(m.cfg.MinReclaim, t.Signal); ok && m.pressured {
			line += r.Value(capacity)
		}
		return avail < line
	}
	if t, ok := Find(m.cfg.Hard, MemoryAvailable); ok && met(t) {
		return t, hardGrace, true
	}
	t, ok := Find(m.cfg.Soft, MemoryAvailable)
	if !ok || !met(t) {
		m.softSince = time.Time{}
		return Threshold{}, 0, false
	}
	now := m.now()
	if m.softSince.IsZero() {
		m.softSince = now
	}
	if now.Sub(m.softSince) < m.cfg.SoftGrace[MemoryAvailable] {
		return Threshold{}, 0, false
	}
	return t, -1, true
}

func memRequest(p *corev1.Pod) int64 {
	q := resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{})[corev1.ResourceMemory]
	return q.Value()
}

// rankMemory orders pods for eviction as upstream's rankMemoryPressure:
// pods without usage figures first, then those using more than they
// requested, then lower priority, then more usage above requests.
func rankMemory(pods []*corev1.Pod, usage map[types.UID]PodMemory) {
	prio := func(p *corev1.Pod) int32 {
		if p.Spec.Priority != nil {
			return *p.Spec.Priority
		}
		return 0
	}
	slices.SortStableFunc(pods, func(a, b *corev1.Pod) int {
		ua, okA := usage[a.UID]
		ub, okB := usage[b.UID]
		if okA != okB {
			if !okA {
				return -1
			}
			return 1
		}
		overA, overB := int64(ua.Total)-memRequest(a), int64(ub.Total)-memRequest(b)
		if (overA > 0) != (overB > 0) {
			if overA > 0 {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(prio(a), prio(b)); c != 0 {
			return c
		}
		return cmp.Compare(overB, overA)
	})
}

// message is upstream's eviction message: the signal, its threshold and
// what was available, then each container using more than it requested.
func message(t Threshold, capacity, avail int64, pod *corev1.Pod, usage PodMemory) string {
	var b strings.Builder
	fmt.Fprintf(&b, "The node was low on resource: memory. Threshold quantity: %s, available: %s. ",
		byteQty(t.Value(capacity)), byteQty(avail))
	for _, c := range pod.Spec.Containers {
		used, ok := usage.Containers[c.Name]
		req := c.Resources.Requests[corev1.ResourceMemory]
		if ok && int64(used) > req.Value() {
			fmt.Fprintf(&b, "Container %s was using %s, request is %s, has larger consumption of memory. ", c.Name, byteQty(int64(used)), req.String())
		}
	}
	return b.String()
}

// byteQty is a byte count as upstream's messages write it (1234Ki).
func byteQty(v int64) *resource.Quantity { return resource.NewQuantity(v, resource.BinarySI) }
