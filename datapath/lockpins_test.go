package datapath

import (
	"testing"
	"time"
)

// A second holder of the pin directory waits, told once, until the
// first lets go.
func TestLockPinsWaitsForTheHolder(t *testing.T) {
	dir := t.TempDir()
	release, err := LockPins(dir, func() { t.Error("the first lock waited") })
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{}, 1)
	got := make(chan func(), 1)
	go func() {
		r, err := LockPins(dir, func() { waited <- struct{}{} })
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
