package runner

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

type calls struct {
	mu   sync.Mutex
	full []bool
	fail int // fail this many calls first
	ch   chan struct{}
}

func (c *calls) fn(full bool) error {
	c.mu.Lock()
	c.full = append(c.full, full)
	fail := c.fail > 0
	c.fail--
	c.mu.Unlock()
	c.ch <- struct{}{}
	if fail {
		return errors.New("boom")
	}
	return nil
}

func (c *calls) wait(t *testing.T, n int) []bool {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-c.ch:
		case <-time.After(30 * time.Second):
			t.Fatalf("only %d of %d syncs ran", i, n)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]bool(nil), c.full...)
}

func TestFirstSyncIsFullAndTriggersMerge(t *testing.T) {
	c := &calls{ch: make(chan struct{}, 100)}
	r := New(c.fn, 50*time.Millisecond, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	got := c.wait(t, 1)
	if !got[0] {
		t.Error("the first sync was not full")
	}
	for i := 0; i < 100; i++ {
		r.Trigger()
	}
	got = c.wait(t, 1)
	if got[1] {
		t.Error("a triggered sync was full")
	}
	// 100 triggers while one run was pending merge into at most one more.
	time.Sleep(200 * time.Millisecond)
	c.mu.Lock()
	n := len(c.full)
	c.mu.Unlock()
	if n > 3 {
		t.Errorf("%d syncs for one burst of triggers", n)
	}
}

func TestFailureRetriesWithFullSync(t *testing.T) {
	c := &calls{ch: make(chan struct{}, 100), fail: 2}
	r := New(c.fn, time.Millisecond, time.Hour)
	r.maxBackoff = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	c.wait(t, 1)
	r.Trigger()
	got := c.wait(t, 2)
	for i, full := range got {
		if !full {
			t.Errorf("sync %d after a failure was not full: %v", i, got)
		}
	}
}

func TestNoPeriodRunsOnlyWhenAsked(t *testing.T) {
	c := &calls{ch: make(chan struct{}, 100)}
	r := New(c.fn, time.Millisecond, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	c.wait(t, 1)
	time.Sleep(100 * time.Millisecond)
	c.mu.Lock()
	n := len(c.full)
	c.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d syncs without a trigger, want only the first", n)
	}
	r.Trigger()
	if got := c.wait(t, 1); got[1] {
		t.Error("a triggered sync was full")
	}
}
