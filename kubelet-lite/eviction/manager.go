package eviction

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
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

// PodUsage is a pod's use of a resource (memory working set, or bytes
// on disk), in all and by container.
type PodUsage struct {
	Total      uint64
	Containers map[string]uint64
}

// Fs is a file system's size and free space.
type Fs struct {
	Dev                                     uint64 // device: nodefs and imagefs may be one
	Capacity, Available, Inodes, InodesFree uint64
}

// Sources are where the manager looks.
type Sources struct {
	Pods Pods
	// Memory reads the node's memory (ReadMemory when nil).
	Memory func() (Memory, error)
	// Filesystems reads nodefs (the root dir's) and imagefs (the
	// runtime's); nil: no disk signals.
	Filesystems func(context.Context) (nodefs, imagefs Fs, err error)
	// MemoryUsage and DiskUsage read the pods' use, only under pressure.
	MemoryUsage, DiskUsage func(context.Context) (map[types.UID]PodUsage, error)
	// ReclaimImages removes unused images to free at least bytes (all
	// of them for a negative count), before any pod is evicted for
	// imagefs (or a nodefs it shares); nil: none.
	ReclaimImages func(ctx context.Context, bytes int64) (int64, error)
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
	// Interval is how often the signals are looked at (250 ms by
	// default: a memory hog is stopped before the kernel's OOM killer
	// picks at random, where upstream's 10 s housekeeping often comes
	// too late; /proc/meminfo and statfs cost microseconds, so this works
	// the same on cgroup v1 and v2 without memcg notifications).
	Interval time.Duration
	// Critical pods are never evicted (static and system-critical ones).
	Critical func(*corev1.Pod) bool
	// PressureTransition is how long a pressure condition holds after
	// its signals last met a threshold
	// (--eviction-pressure-transition-period).
	PressureTransition time.Duration
}

// evictable are the signals that evict, in the order they are acted on;
// pid.available only sets PIDPressure.
var evictable = []Signal{MemoryAvailable, NodeFSAvailable, NodeFSInodesFree, ImageFSAvailable, ImageFSInodesFree}

// observation is a signal's value and what its percentages are of.
type observation struct{ available, capacity int64 }

// Manager evicts pods when a signal falls below its threshold: one pod
// at a time, the one that ranks first as upstream ranks them (usage over
// requests first, then lower priority, then usage above requests),
// waiting for it to stop before looking again. Disk signals first try
// removing unused images.
type Manager struct {
	cfg Config
	src Sources
	log *slog.Logger
	now func() time.Time

	softSince map[Signal]time.Time // when each soft threshold was first met
	pressured map[Signal]bool      // met at the last look: minimum reclaim applies
	stuck     bool                 // told already that no pod can be evicted

	pmu     sync.Mutex                             // guards what Conditions reads
	lastMet map[corev1.NodeConditionType]time.Time // when each condition was last met
	metNow  map[corev1.NodeConditionType]bool      // met at the last look
}

// NewManager returns a manager.
func NewManager(cfg Config, src Sources, log *slog.Logger) *Manager {
	if cfg.Interval <= 0 {
		cfg.Interval = 250 * time.Millisecond
	}
	if cfg.Critical == nil {
		cfg.Critical = func(*corev1.Pod) bool { return false }
	}
	if src.Memory == nil {
		src.Memory = ReadMemory
	}
	return &Manager{cfg: cfg, src: src, log: log, now: time.Now, softSince: map[Signal]time.Time{}, pressured: map[Signal]bool{},
		lastMet: map[corev1.NodeConditionType]time.Time{}}
}

// Run watches the signals until ctx ends.
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
		if !slices.ContainsFunc(m.src.Pods.Active(), func(p *corev1.Pod) bool { return p.UID == uid }) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// observe reads every signal it can; sharedFs says nodefs and imagefs
// are one file system.
func (m *Manager) observe(ctx context.Context) (obs map[Signal]observation, sharedFs bool) {
	obs = map[Signal]observation{}
	if mem, err := m.src.Memory(); err == nil && mem.Total > 0 {
		obs[MemoryAvailable] = observation{int64(mem.Available()), int64(mem.Total)}
	}
	if m.src.Filesystems == nil {
		return obs, false
	}
	nodefs, imagefs, err := m.src.Filesystems(ctx)
	if err != nil {
		return obs, false
	}
	for _, f := range []struct {
		fs            Fs
		bytes, inodes Signal
	}{{nodefs, NodeFSAvailable, NodeFSInodesFree}, {imagefs, ImageFSAvailable, ImageFSInodesFree}} {
		if f.fs.Capacity > 0 {
			obs[f.bytes] = observation{int64(f.fs.Available), int64(f.fs.Capacity)}
		}
		if f.fs.Inodes > 0 {
			obs[f.inodes] = observation{int64(f.fs.InodesFree), int64(f.fs.Inodes)}
		}
	}
	return obs, nodefs.Dev == imagefs.Dev
}

// synchronize looks at the signals once and evicts at most one pod,
// returning its UID.
func (m *Manager) synchronize(ctx context.Context) types.UID {
	obs, shared := m.observe(ctx)
	m.notePressure(obs)
	t, grace, ok := m.threshold(obs)
	if !ok {
		m.stuck = false
		return ""
	}
	disk := t.Signal != MemoryAvailable
	if disk && m.src.ReclaimImages != nil && (strings.HasPrefix(string(t.Signal), "imagefs.") || shared) {
		if m.reclaim(ctx, t, obs[t.Signal]) {
			if obs, _ = m.observe(ctx); !m.met(t, obs[t.Signal]) {
				m.log.Info("Removing unused images relieved the pressure; no pod evicted", "signal", t.Signal)
				return ""
			}
		}
	}
	pods := slices.DeleteFunc(m.src.Pods.Active(), m.cfg.Critical)
	if len(pods) == 0 {
		if !m.stuck {
			m.log.Warn("A signal is below its eviction threshold and no pod can be evicted", "threshold", t.String(), "available", obs[t.Signal].available)
		}
		m.stuck = true
		return ""
	}
	m.stuck = false
	usageOf, reqName := m.src.MemoryUsage, corev1.ResourceMemory
	if disk {
		usageOf, reqName = m.src.DiskUsage, corev1.ResourceEphemeralStorage
	}
	var usage map[types.UID]PodUsage
	if usageOf != nil {
		var err error
		if usage, err = usageOf(ctx); err != nil {
			m.log.Warn("Reading pod usage for eviction failed; ranking without it", "signal", t.Signal, "error", err)
		}
	}
	rank(pods, usage, reqName)
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
	msg := message(t, obs[t.Signal], victim, usage[victim.UID])
	if !m.src.Pods.Evict(victim.UID, msg, g) {
		return ""
	}
	evictions.Inc(string(t.Signal))
	m.log.Warn("Evicted a pod: a signal below its eviction threshold", "pod", victim.Namespace+"/"+victim.Name, "threshold", t.String(),
		"available", obs[t.Signal].available, "gracePeriod", g)
	return victim.UID
}

// reclaim removes unused images: enough to get back over the threshold
// and its minimum reclaim, or all of them for inodes. True when any went.
func (m *Manager) reclaim(ctx context.Context, t Threshold, o observation) bool {
	want := int64(-1)
	if !strings.HasSuffix(string(t.Signal), "inodesFree") {
		want = t.Value(o.capacity) - o.available
		if r, ok := Find(m.cfg.MinReclaim, t.Signal); ok {
			want += r.Value(o.capacity)
		}
	}
	freed, err := m.src.ReclaimImages(ctx, want)
	if err != nil {
		m.log.Warn("Removing unused images under disk pressure fell short", "signal", t.Signal, "freed", freed, "error", err)
	}
	return freed > 0
}

// met says whether o is under t (with the minimum reclaim while the
// signal is under pressure, so the node does not hover on the line).
func (m *Manager) met(t Threshold, o observation) bool {
	if o.capacity == 0 {
		return false
	}
	line := t.Value(o.capacity)
	if r, ok := Find(m.cfg.MinReclaim, t.Signal); ok && m.pressured[t.Signal] {
		line += r.Value(o.capacity)
	}
	return o.available < line
}

// threshold returns the first threshold met now (by signal, hard before
// soft), with the grace period it evicts with (-1: the pod's own,
// capped); a soft one counts once it has held for its grace period.
func (m *Manager) threshold(obs map[Signal]observation) (Threshold, int64, bool) {
	var found *Threshold
	var grace int64
	for _, sig := range evictable {
		o, seen := obs[sig]
		hard, hasHard := Find(m.cfg.Hard, sig)
		soft, hasSoft := Find(m.cfg.Soft, sig)
		hardMet := seen && hasHard && m.met(hard, o)
		softMet := seen && hasSoft && m.met(soft, o)
		if !softMet {
			delete(m.softSince, sig)
		} else if _, ok := m.softSince[sig]; !ok {
			m.softSince[sig] = m.now()
		}
		softDue := softMet && m.now().Sub(m.softSince[sig]) >= m.cfg.SoftGrace[sig]
		m.pressured[sig] = hardMet || softMet
		switch {
		case found != nil:
		case hardMet:
			found, grace = &hard, hardGrace
		case softDue:
			found, grace = &soft, -1
		}
	}
	if found == nil {
		return Threshold{}, 0, false
	}
	return *found, grace, true
}

func request(p *corev1.Pod, name corev1.ResourceName) int64 {
	q := resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{})[name]
	return q.Value()
}

// rank orders pods for eviction as upstream's rankMemoryPressure and
// rankDiskPressureFunc: pods without usage figures first, then those
// using more of the resource than they requested, then lower priority,
// then more usage above requests.
func rank(pods []*corev1.Pod, usage map[types.UID]PodUsage, name corev1.ResourceName) {
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
		overA, overB := int64(ua.Total)-request(a, name), int64(ub.Total)-request(b, name)
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

// resourceOf is what a signal's message says the node was low on,
// upstream's words.
func resourceOf(sig Signal) string {
	switch {
	case sig == MemoryAvailable:
		return "memory"
	case strings.HasSuffix(string(sig), "inodesFree"):
		return "inodes"
	}
	return "ephemeral-storage"
}

// message is upstream's eviction message: the resource, its threshold
// and what was available, then each container using more than it
// requested.
func message(t Threshold, o observation, pod *corev1.Pod, usage PodUsage) string {
	res := resourceOf(t.Signal)
	qty := func(v int64) fmt.Stringer {
		if res == "inodes" {
			return resource.NewQuantity(v, resource.DecimalSI)
		}
		return byteQty(v)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "The node was low on resource: %s. Threshold quantity: %s, available: %s. ", res, qty(t.Value(o.capacity)), qty(o.available))
	reqName := corev1.ResourceMemory
	if res != "memory" {
		reqName = corev1.ResourceEphemeralStorage
	}
	for _, c := range pod.Spec.Containers {
		if res == "inodes" {
			break // usage figures are bytes
		}
		used, ok := usage.Containers[c.Name]
		req := c.Resources.Requests[reqName]
		if ok && int64(used) > req.Value() {
			fmt.Fprintf(&b, "Container %s was using %s, request is %s, has larger consumption of %s. ", c.Name, byteQty(int64(used)), req.String(), res)
		}
	}
	return b.String()
}

// byteQty is a byte count as upstream's messages write it (1234Ki).
func byteQty(v int64) *resource.Quantity { return resource.NewQuantity(v, resource.BinarySI) }
