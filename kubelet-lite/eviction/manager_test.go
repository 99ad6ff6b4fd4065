package eviction

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

type fakePods struct {
	active  []*corev1.Pod
	evicted []types.UID
	msgs    []string
	graces  []int64
}

func (f *fakePods) Active() []*corev1.Pod { return append([]*corev1.Pod{}, f.active...) }

func (f *fakePods) Evict(uid types.UID, msg string, grace int64) bool {
	f.evicted, f.msgs, f.graces = append(f.evicted, uid), append(f.msgs, msg), append(f.graces, grace)
	return true
}

func pod(uid string, memReq string, prio int32) *corev1.Pod {
	p := &corev1.Pod{Spec: corev1.PodSpec{Priority: ptr.To(prio), Containers: []corev1.Container{{Name: "c"}}}}
	p.UID, p.Name, p.Namespace = types.UID(uid), uid, "ns"
	if memReq != "" {
		p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(memReq)}
	}
	return p
}

func use(total uint64) PodUsage {
	return PodUsage{Total: total, Containers: map[string]uint64{"c": total}}
}

func newTestManager(t *testing.T, cfg Config, pods *fakePods, avail *uint64, usage map[types.UID]PodUsage) *Manager {
	return NewManager(cfg, Sources{Pods: pods,
		Memory:      func() (Memory, error) { return Memory{Total: 8 << 30, Free: *avail}, nil },
		MemoryUsage: func(context.Context) (map[types.UID]PodUsage, error) { return usage, nil },
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// TestRankMemory: over their requests first (BestEffort pods always are
// when they use anything), then lower priority, then more above requests;
// a pod without figures first of all.
func TestRankMemory(t *testing.T) {
	guaranteed := pod("guaranteed", "1Gi", 0)
	burstableUnder := pod("burstable-under", "512Mi", 0)
	burstableOver := pod("burstable-over", "64Mi", 0)
	bestEffort := pod("besteffort", "", 0)
	important := pod("important-besteffort", "", 1000)
	noStats := pod("nostats", "1Gi", 0)
	usage := map[types.UID]PodUsage{
		"guaranteed": use(900 << 20), "burstable-under": use(100 << 20), "burstable-over": use(300 << 20),
		"besteffort": use(200 << 20), "important-besteffort": use(2 << 30),
	}
	pods := []*corev1.Pod{guaranteed, burstableUnder, important, burstableOver, bestEffort, noStats}
	rank(pods, usage, corev1.ResourceMemory)
	var got []string
	for _, p := range pods {
		got = append(got, p.Name)
	}
	// Among pods under their requests, usage minus requests decides:
	// guaranteed (-124Mi) before burstable-under (-412Mi), as upstream.
	want := "nostats burstable-over besteffort important-besteffort guaranteed burstable-under"
	if strings.Join(got, " ") != want {
		t.Errorf("order %v, want %s", got, want)
	}
}

// TestHardEviction: above the threshold nothing happens; below it the
// first-ranked pod is evicted with a 1 s grace and upstream's message;
// critical pods are never picked; with a minimum reclaim the pressure
// holds until that much more is free.
func TestHardEviction(t *testing.T) {
	hard, _ := ParseFlag("memory.available<1Gi")
	reclaim, _ := ParseFlag("memory.available<512Mi")
	pods := &fakePods{active: []*corev1.Pod{pod("static", "", 0), pod("guaranteed", "1Gi", 0), pod("hog", "", 0)}}
	avail := uint64(2 << 30)
	usage := map[types.UID]PodUsage{"static": use(3 << 30), "guaranteed": use(100 << 20), "hog": use(600 << 20)}
	m := newTestManager(t, Config{Hard: hard, MinReclaim: reclaim, Critical: func(p *corev1.Pod) bool { return p.Name == "static" }}, pods, &avail, usage)
	if uid := m.synchronize(context.Background()); uid != "" {
		t.Fatalf("evicted %s with 2Gi available", uid)
	}
	avail = 900 << 20
	if uid := m.synchronize(context.Background()); uid != "hog" {
		t.Fatalf("evicted %q, want the BestEffort hog (the static pod uses more but is critical)", uid)
	}
	if pods.graces[0] != 1 {
		t.Errorf("grace %d, want 1 for a hard threshold", pods.graces[0])
	}
	wantMsg := "The node was low on resource: memory. Threshold quantity: 1Gi, available: 900Mi. Container c was using 600Mi, request is 0, has larger consumption of memory. "
	if pods.msgs[0] != wantMsg {
		t.Errorf("message %q\nwant    %q", pods.msgs[0], wantMsg)
	}
	// Back over the threshold but not by the minimum reclaim: still
	// pressure, the next pod goes.
	pods.active = pods.active[:2]
	avail = 1200 << 20
	if uid := m.synchronize(context.Background()); uid != "guaranteed" {
		t.Errorf("evicted %q within the minimum reclaim, want guaranteed", uid)
	}
	avail = 2 << 30
	m.synchronize(context.Background())
	avail = 1200 << 20 // no longer under pressure: the plain threshold holds
	if uid := m.synchronize(context.Background()); uid != "" {
		t.Errorf("evicted %s above the threshold after pressure ended", uid)
	}
}

// TestSoftEviction: a soft threshold evicts only once it has held for its
// grace period, with the pod's grace period capped by MaxPodGrace.
func TestSoftEviction(t *testing.T) {
	soft, _ := ParseFlag("memory.available<1Gi")
	p := pod("a", "", 0)
	p.Spec.TerminationGracePeriodSeconds = ptr.To(int64(120))
	pods := &fakePods{active: []*corev1.Pod{p}}
	avail := uint64(500 << 20)
	m := newTestManager(t, Config{Soft: soft, SoftGrace: map[Signal]time.Duration{MemoryAvailable: time.Minute}, MaxPodGrace: 30}, pods, &avail,
		map[types.UID]PodUsage{"a": use(1 << 30)})
	now := time.Unix(1000, 0)
	m.now = func() time.Time { return now }
	if uid := m.synchronize(context.Background()); uid != "" {
		t.Fatal("evicted as soon as the soft threshold was met")
	}
	now = now.Add(59 * time.Second)
	if uid := m.synchronize(context.Background()); uid != "" {
		t.Fatal("evicted before the grace period")
	}
	now = now.Add(time.Second)
	if uid := m.synchronize(context.Background()); uid != "a" || pods.graces[0] != 30 {
		t.Fatalf("after the grace period: evicted %q with grace %v, want a with 30", uid, pods.graces)
	}
}

func TestMemoryFormula(t *testing.T) {
	meminfoPath = t.TempDir() + "/meminfo"
	t.Cleanup(func() { meminfoPath = "/proc/meminfo" })
	body := "MemTotal:       8000000 kB\nMemFree:        1000000 kB\nMemAvailable:   5000000 kB\nInactive(file):  2000000 kB\n"
	if err := writeFile(meminfoPath, body); err != nil {
		t.Fatal(err)
	}
	m, err := ReadMemory()
	if err != nil {
		t.Fatal(err)
	}
	// usage 7000000k, working set 5000000k, available 3000000k (not
	// MemAvailable's 5000000k: the kubelet's own formula).
	if m.WorkingSet() != 5000000<<10 || m.Available() != 3000000<<10 {
		t.Errorf("working set %d available %d", m.WorkingSet()>>10, m.Available()>>10)
	}
	if real, err := func() (Memory, error) { meminfoPath = "/proc/meminfo"; return ReadMemory() }(); err != nil || real.Total == 0 || real.Available() > real.Total {
		t.Errorf("this machine: %+v %v", real, err)
	}
}

func writeFile(path, body string) error { return os.WriteFile(path, []byte(body), 0o644) }

// TestDiskEviction: under nodefs pressure on a file system the images
// share, unused images go first and, when that is enough, no pod does;
// when it is not, the pod using the most disk above its request is
// evicted with the ephemeral-storage message. On a dedicated image file
// system, nodefs pressure removes no images.
func TestDiskEviction(t *testing.T) {
	hard, _ := ParseFlag("nodefs.available<100,memory.available<1Mi")
	small := pod("small", "", 0)
	big := pod("big", "", 0)
	big.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceEphemeralStorage: resource.MustParse("10")}
	pods := &fakePods{active: []*corev1.Pod{small, big}}
	nodeAvail, imageDev := uint64(50), uint64(1)
	var asked []int64
	freeing := uint64(0)
	m := NewManager(Config{Hard: hard}, Sources{Pods: pods,
		Memory: func() (Memory, error) { return Memory{Total: 8 << 30, Free: 4 << 30}, nil },
		Filesystems: func(context.Context) (Fs, Fs, error) {
			return Fs{Dev: 1, Capacity: 1000, Available: nodeAvail, Inodes: 100, InodesFree: 50}, Fs{Dev: imageDev, Capacity: 1000, Available: 500, Inodes: 100, InodesFree: 50}, nil
		},
		DiskUsage: func(context.Context) (map[types.UID]PodUsage, error) {
			return map[types.UID]PodUsage{"small": use(20), "big": use(400)}, nil
		},
		ReclaimImages: func(_ context.Context, n int64) (int64, error) {
			asked = append(asked, n)
			nodeAvail += freeing
			return int64(freeing), nil
		},
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	freeing = 100
	if uid := m.synchronize(context.Background()); uid != "" || len(asked) != 1 || asked[0] != 50 {
		t.Fatalf("images enough: evicted %q, reclaim asked %v (want 50 bytes)", uid, asked)
	}
	nodeAvail, freeing = 50, 0
	if uid := m.synchronize(context.Background()); uid != "big" {
		t.Fatalf("images not enough: evicted %q, want big", uid)
	}
	if !strings.HasPrefix(pods.msgs[0], "The node was low on resource: ephemeral-storage. Threshold quantity: 100, available: 50. Container c was using 400") {
		t.Errorf("message %q", pods.msgs[0])
	}
	imageDev, asked = 2, nil
	pods.active = []*corev1.Pod{small}
	if uid := m.synchronize(context.Background()); uid != "small" || len(asked) != 0 {
		t.Errorf("dedicated imagefs: evicted %q, reclaim asked %v (want none)", uid, asked)
	}
}
