package datapath

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A second holder of the pin directory waits, told once, until the
// first lets go.
func TestLockPinsWaitsForTheHolder(t *testing.T) {
	dir := t.TempDir()
	release, err := LockPins(t.Context(), dir, func() { t.Error("the first lock waited") })
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{}, 1)
	got := make(chan func(), 1)
	go func() {
		r, err := LockPins(t.Context(), dir, func() { waited <- struct{}{} })
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Fatal("the second lock did not report waiting")
	}
	select {
	case <-got:
		t.Fatal("the second lock was taken while the first was held")
	case <-time.After(100 * time.Millisecond):
	}
	release()
	select {
	case r := <-got:
		r()
	case <-time.After(5 * time.Second):
		t.Fatal("the second lock was not taken once the first was released")
	}
}

// A waiter told to stop gives up instead of waiting on.
func TestLockPinsWaitEndsWithContext(t *testing.T) {
	dir := t.TempDir()
	release, err := LockPins(t.Context(), dir, func() {})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := LockPins(ctx, dir, func() {}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want the context's end", err)
	}
}
