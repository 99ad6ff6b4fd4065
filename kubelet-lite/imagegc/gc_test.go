package imagegc

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	fake "k8s.io/cri-api/pkg/apis/testing"

	"github.com/hivelet/hivelet/kubelet-lite/cri/critest"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// node is a fake runtime with images (id: size), a container using
// "used", "pinned" pinned, and an image file system of 1000 bytes.
func node(t *testing.T, policy Policy, available *uint64) (*GC, *critest.Runtime, *clock) {
	rt, client := critest.New()
	rt.Images.Images = map[string]*runtimeapi.Image{}
	for id, size := range map[string]uint64{"used": 300, "pinned": 100, "old": 50, "older": 60, "new": 70} {
		rt.Images.Images[id] = &runtimeapi.Image{Id: id, RepoTags: []string{"example.com/" + id + ":1"}, Size: size, Pinned: id == "pinned"}
	}
	rt.RT.SetFakeContainers([]*fake.FakeContainer{{ContainerStatus: runtimeapi.ContainerStatus{Id: "c1",
		Image: &runtimeapi.ImageSpec{Image: "example.com/used:1"}, State: runtimeapi.ContainerState_CONTAINER_EXITED}}})
	c := &clock{t: time.Unix(10000, 0)}
	g := New(client, policy, func(context.Context) (uint64, uint64, error) { return 1000, *available, nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	g.now = c.now
	return g, rt, c
}

func remaining(rt *critest.Runtime) []string {
	var ids []string
	for id := range rt.Images.Images {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// TestCollectForSpace: over the high threshold, unused images go least
// recently used first (here: first seen first) until the low threshold is
// reached; an image in use, a pinned one and one younger than the
// minimum age stay.
func TestCollectForSpace(t *testing.T) {
	avail := uint64(100) // 90% used
	g, rt, c := node(t, Policy{HighThresholdPercent: 85, LowThresholdPercent: 80, MinAge: time.Minute}, &avail)
	// Seen in this order, a minute apart: old, older, then new.
	for _, id := range []string{"old", "older"} {
		g.records[id] = &record{firstSeen: c.t}
		c.t = c.t.Add(time.Minute)
	}
	g.detect(context.Background()) // "new", "used", "pinned" first seen now
	c.t = c.t.Add(30 * time.Second)
	// To 80%: 200 available, 100 to free: old (50) and older (60).
	freed, err := g.Collect(context.Background())
	if err != nil || freed != 110 {
		t.Errorf("freed %d (%v), want 110", freed, err)
	}
	if got := remaining(rt); !slices.Equal(got, []string{"new", "pinned", "used"}) {
		t.Errorf("images left %v", got)
	}
	// Under the high threshold nothing goes.
	avail = 500
	c.t = c.t.Add(time.Hour)
	if freed, err := g.Collect(context.Background()); err != nil || freed != 0 {
		t.Errorf("under the threshold: freed %d (%v)", freed, err)
	}
	// Over it with too little to free: an error saying so, what could go gone.
	avail = 10
	if _, err := g.Collect(context.Background()); err == nil {
		t.Error("no error when the eligible images cannot free enough")
	}
	if got := remaining(rt); !slices.Equal(got, []string{"pinned", "used"}) {
		t.Errorf("images left %v, want only the used and pinned ones", got)
	}
}

// TestCollectForAge: with imageMaximumGCAge, an image unused for longer
// goes even with the disk nearly empty.
func TestCollectForAge(t *testing.T) {
	avail := uint64(900)
	g, rt, c := node(t, Policy{HighThresholdPercent: 85, LowThresholdPercent: 80, MaxAge: time.Hour}, &avail)
	g.detect(context.Background())
	c.t = c.t.Add(2 * time.Hour)
	if freed, err := g.Collect(context.Background()); err != nil || freed != 180 {
		t.Errorf("freed %d (%v), want old+older+new = 180", freed, err)
	}
	if got := remaining(rt); !slices.Equal(got, []string{"pinned", "used"}) {
		t.Errorf("images left %v", got)
	}
}

func TestPolicyValidate(t *testing.T) {
	if err := DefaultPolicy.Validate(); err != nil {
		t.Error(err)
	}
	for _, p := range []Policy{{HighThresholdPercent: 101}, {HighThresholdPercent: 50, LowThresholdPercent: 60}, {HighThresholdPercent: 80, MinAge: time.Hour, MaxAge: time.Minute}} {
		if p.Validate() == nil {
			t.Errorf("%+v accepted", p)
		}
	}
}
