// Package imagegc is kubelet-lite's image garbage collector, with the
// upstream kubelet's policy: when the image file system is fuller than
// imageGCHighThresholdPercent, unused images go, least recently used
// first, until it is down to imageGCLowThresholdPercent; images unused
// for longer than imageMaximumGCAge go whatever the disk. An image that
// a container (running or not) uses, the runtime pins, or the runtime's
// sandbox image, never goes, nor one first seen less than
// imageMinimumGCAge ago.
package imagegc

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hivelet/hivelet/kubelet-lite/cri"
	"github.com/hivelet/hivelet/kubelet-lite/metrics"
)

// Period is how often the collector runs, upstream's ImageGCPeriod.
const Period = 5 * time.Minute

var collected = metrics.Kubelet.NewCounter("kubelet_image_garbage_collected_total",
	"Total number of images garbage collected by the kubelet, whether through disk usage or image age.", "reason")

// Policy is upstream's image GC settings.
type Policy struct {
	HighThresholdPercent, LowThresholdPercent int
	MinAge, MaxAge                            time.Duration // MaxAge 0: no age limit
}

// DefaultPolicy is the upstream kubelet's.
var DefaultPolicy = Policy{HighThresholdPercent: 85, LowThresholdPercent: 80, MinAge: 2 * time.Minute}

// Validate checks the thresholds as upstream does.
func (p Policy) Validate() error {
	switch {
	case p.HighThresholdPercent < 0 || p.HighThresholdPercent > 100:
		return fmt.Errorf("imageGCHighThresholdPercent %d: want 0 to 100", p.HighThresholdPercent)
	case p.LowThresholdPercent < 0 || p.LowThresholdPercent > 100:
		return fmt.Errorf("imageGCLowThresholdPercent %d: want 0 to 100", p.LowThresholdPercent)
	case p.LowThresholdPercent > p.HighThresholdPercent:
		return fmt.Errorf("imageGCLowThresholdPercent %d is above imageGCHighThresholdPercent %d", p.LowThresholdPercent, p.HighThresholdPercent)
	case p.MinAge < 0 || p.MaxAge < 0 || p.MaxAge != 0 && p.MaxAge < p.MinAge:
		return fmt.Errorf("imageMaximumGCAge %v must be 0 or at least imageMinimumGCAge %v", p.MaxAge, p.MinAge)
	}
	return nil
}

// FsUsage is the image file system's size and free space, in bytes.
type FsUsage func(ctx context.Context) (capacity, available uint64, err error)

// record is what the collector knows of an image over time.
type record struct {
	firstSeen, lastUsed time.Time
	size                uint64
}

// GC collects images.
type GC struct {
	rt     *cri.Client
	policy Policy
	fs     FsUsage
	log    *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	records map[string]*record // by image ID
}

// New returns a collector; fs reads the image file system's usage.
func New(rt *cri.Client, policy Policy, fs FsUsage, log *slog.Logger) *GC {
	return &GC{rt: rt, policy: policy, fs: fs, log: log, now: time.Now, records: map[string]*record{}}
}

// Run collects every period until ctx ends, after a first look at the
// images (their first-seen times start the minimum age).
func (g *GC) Run(ctx context.Context, period time.Duration) {
	if _, _, err := g.detect(ctx); err != nil {
		g.log.Warn("Listing images for garbage collection failed", "error", err)
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := g.Collect(ctx); err != nil {
			g.log.Warn("Image garbage collection failed", "error", err)
		}
	}
}

// candidate is an image that may go.
type candidate struct {
	id string
	record
}

// detect lists the images, records when each was first seen and last
// used, and returns those that may be removed now, least recently used
// first, and the total size of all images.
func (g *GC) detect(ctx context.Context) ([]candidate, uint64, error) {
	cctx, cancel := cri.Ctx(ctx)
	defer cancel()
	imgs, err := g.rt.Images.ListImages(cctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		return nil, 0, fmt.Errorf("list images: %w", err)
	}
	cs, err := g.rt.Runtime.ListContainers(cctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return nil, 0, fmt.Errorf("list containers: %w", err)
	}
	inUse := map[string]bool{}
	for _, c := range cs.GetContainers() {
		inUse[c.GetImageRef()] = true
		inUse[c.GetImage().GetImage()] = true
	}
	if s := g.sandboxImage(cctx); s != "" {
		inUse[s] = true
	}
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	live := map[string]bool{}
	var out []candidate
	var total uint64
	for _, img := range imgs.GetImages() {
		id := img.GetId()
		live[id] = true
		total += img.GetSize()
		r := g.records[id]
		if r == nil {
			r = &record{firstSeen: now}
			g.records[id] = r
		}
		r.size = img.GetSize()
		used := img.GetPinned() || inUse[id]
		for _, name := range append(slices.Clone(img.GetRepoTags()), img.GetRepoDigests()...) {
			used = used || inUse[name]
		}
		if used {
			r.lastUsed = now
			continue
		}
		if now.Sub(r.firstSeen) >= g.policy.MinAge {
			out = append(out, candidate{id, *r})
		}
	}
	for id := range g.records {
		if !live[id] {
			delete(g.records, id)
		}
	}
	slices.SortFunc(out, func(a, b candidate) int {
		if c := a.lastUsed.Compare(b.lastUsed); c != 0 {
			return c
		}
		return cmp.Or(a.firstSeen.Compare(b.firstSeen), cmp.Compare(a.id, b.id))
	})
	return out, total, nil
}

// sandboxImage is the runtime's pause image, from its verbose status
// (containerd reports its CRI config there); runtimes since containerd
// 1.7 also pin it.
func (g *GC) sandboxImage(ctx context.Context) string {
	st, err := g.rt.Runtime.Status(ctx, &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		return ""
	}
	var cfg struct {
		SandboxImage string `json:"sandboxImage"`
	}
	if json.Unmarshal([]byte(st.GetInfo()["config"]), &cfg) != nil {
		return ""
	}
	return cfg.SandboxImage
}

// Collect runs the policy once and returns the bytes freed.
func (g *GC) Collect(ctx context.Context) (uint64, error) {
	cands, _, err := g.detect(ctx)
	if err != nil {
		return 0, err
	}
	var freed uint64
	if g.policy.MaxAge > 0 {
		now := g.now()
		var young []candidate
		for _, c := range cands {
			last := c.lastUsed
			if last.IsZero() {
				last = c.firstSeen
			}
			if now.Sub(last) <= g.policy.MaxAge {
				young = append(young, c)
				continue
			}
			if g.remove(ctx, c, "age") {
				freed += c.size
			}
		}
		cands = young
	}
	capacity, available, err := g.fs(ctx)
	if err != nil || capacity == 0 {
		return freed, fmt.Errorf("image file system usage: %v", err)
	}
	usage := int((capacity - min(available, capacity)) * 100 / capacity)
	if usage < g.policy.HighThresholdPercent {
		return freed, nil
	}
	want := int64(capacity)*int64(100-g.policy.LowThresholdPercent)/100 - int64(available)
	g.log.Info("Image file system over the high threshold; removing unused images", "usagePercent", usage,
		"highThresholdPercent", g.policy.HighThresholdPercent, "bytesToFree", want)
	spaceFreed := g.free(ctx, cands, want, "space")
	freed += uint64(spaceFreed)
	if spaceFreed < want {
		return freed, fmt.Errorf("failed to garbage collect required amount of images. Attempted to free %d bytes, but only found %d bytes eligible to free", want, spaceFreed)
	}
	return freed, nil
}

// free removes candidates in order until want bytes are freed (all of
// them for a negative want).
func (g *GC) free(ctx context.Context, cands []candidate, want int64, reason string) int64 {
	var freed int64
	for _, c := range cands {
		if want >= 0 && freed >= want {
			break
		}
		if g.remove(ctx, c, reason) {
			freed += int64(c.size)
		}
	}
	return freed
}

// Free removes unused images old enough, least recently used first,
// until want bytes are freed (every one for a negative want): the
// eviction manager's reclaim under disk pressure, before pods.
func (g *GC) Free(ctx context.Context, want int64) (int64, error) {
	cands, _, err := g.detect(ctx)
	if err != nil {
		return 0, err
	}
	freed := g.free(ctx, cands, want, "space")
	if want >= 0 && freed < want {
		return freed, fmt.Errorf("only %d of %d bytes of unused images to remove", freed, want)
	}
	return freed, nil
}

func (g *GC) remove(ctx context.Context, c candidate, reason string) bool {
	cctx, cancel := cri.Ctx(ctx)
	defer cancel()
	if _, err := g.rt.Images.RemoveImage(cctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: c.id}}); err != nil {
		g.log.Warn("Removing an unused image failed", "image", c.id, "error", err)
		return false
	}
	g.mu.Lock()
	delete(g.records, c.id)
	g.mu.Unlock()
	collected.Inc(reason)
	g.log.Info("Removed an unused image", "image", c.id, "bytes", c.size, "reason", reason)
	return true
}
