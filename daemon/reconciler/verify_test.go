package reconciler

import (
	"fmt"
	"strings"
	"testing"

	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
	"github.com/hivelet/hivelet/datapath"
)

// tamperedMap is the fake maps as another writer left them: tamper edits
// what a dump reads; during runs once the dump has read the maps, as a
// sync racing a slow dump would (the dump is stale for what it writes).
type tamperedMap struct {
	*datapath.FakeLBMap
	tamper func(*datapath.State)
	during func()
}

func (m *tamperedMap) Dump(pause func()) (*datapath.State, error) {
	st, err := m.FakeLBMap.Dump(pause)
	if err == nil && m.tamper != nil {
		m.tamper(st)
	}
	if m.during != nil {
		m.during()
	}
	return st, err
}

func TestVerifyFindsDriftWithoutHoldingUpSyncs(t *testing.T) {
	for _, chunk := range []int{1, 3, 4096} {
		t.Run(fmt.Sprintf("chunk=%d", chunk), func(t *testing.T) {
			defer func(old int) { verifyChunk = old }(verifyChunk)
			verifyChunk = chunk
			testVerify(t)
		})
	}
}

func testVerify(t *testing.T) {
	m := &tamperedMap{FakeLBMap: datapath.NewFakeLBMap()}
	r := New(m, quiet)
	d := newDesired(r)
	d.set(name(1), []lb.Entry{entry(1, 1, 2)})
	d.set(name(2), []lb.Entry{entry(2, 2, 3)})
	if _, err := d.sync(true); err != nil {
		t.Fatal(err)
	}
	check := func(what string, wantDiff string) {
		t.Helper()
		diffs, err := r.Verify(nil)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		switch {
		case wantDiff == "" && len(diffs) > 0:
			t.Errorf("%s: differences reported: %v", what, diffs)
		case wantDiff != "" && !strings.Contains(strings.Join(diffs, "; "), wantDiff):
			t.Errorf("%s: differences %v, want one about %q", what, diffs, wantDiff)
		}
	}
	check("maps as written", "")

	m.tamper = func(st *datapath.State) { delete(st.Services, frontend(2)) }
	check("a frontend deleted behind the agent", "frontend "+frontend(2).String()+" missing")
	m.tamper = func(st *datapath.State) {
		s := *st.Services[frontend(1)]
		st.Services[frontend(9)] = &s
	}
	check("a frontend added behind the agent", "not written by this agent")
	m.tamper = func(st *datapath.State) {
		for id, b := range st.Backends {
			b.Addr = backend(77).Addr
			st.Backends[id] = b
			break
		}
	}
	check("a backend rewritten behind the agent", "missing or changed")
	m.tamper = func(st *datapath.State) { clear(st.RevNats) }
	check("reverse-NAT entries deleted", "reverse-NAT")

	// What a sync writes while the maps are read is left out: neither
	// the new frontend nor the changed one may count as drift, and
	// drift elsewhere is still found.
	m.tamper = func(st *datapath.State) { delete(st.Services, frontend(2)) }
	m.during = func() {
		d.set(name(3), []lb.Entry{entry(3, 4)})
		d.set(name(1), []lb.Entry{entry(1, 1, 5)})
		if _, err := d.sync(false); err != nil {
			t.Fatal(err)
		}
	}
	diffs, err := r.Verify(nil)
	if err != nil || len(diffs) != 1 || !strings.Contains(diffs[0], frontend(2).String()) {
		t.Errorf("verify racing a sync: differences %v (want only %s missing), err %v", diffs, frontend(2), err)
	}
	m.tamper, m.during = nil, nil
	check("after the racing sync", "")
}

// The check pauses between pieces of work, never holding the lock there:
// a change synced during a pause neither waits for the check nor counts
// as drift.
func TestVerifyPauses(t *testing.T) {
	defer func(n int) { verifyChunk = n }(verifyChunk)
	verifyChunk = 2
	m := &tamperedMap{FakeLBMap: datapath.NewFakeLBMap()}
	r := New(m, quiet)
	d := newDesired(r)
	for i := 1; i <= 6; i++ {
		d.set(name(i), []lb.Entry{entry(i, i, i+10)})
	}
	if _, err := d.sync(true); err != nil {
		t.Fatal(err)
	}
	pauses := 0
	pause := func() {
		pauses++
		if !r.mu.TryLock() {
			t.Fatal("paused with the reconciler's lock held")
		}
		r.mu.Unlock()
		if pauses == 2 {
			d.set(name(1), []lb.Entry{entry(1, 1, 42)})
			d.set(name(7), []lb.Entry{entry(7, 7)})
			if _, err := d.sync(false); err != nil {
				t.Fatal(err)
			}
		}
	}
	diffs, err := r.Verify(pause)
	if err != nil || len(diffs) > 0 {
		t.Fatalf("check with a sync in a pause: differences %v, err %v", diffs, err)
	}
	// The dump pauses once (fake maps), the comparison after every
	// step of 2 entries: 6+ frontends, backends and reverse-NATs.
	if pauses < 6 {
		t.Errorf("%d pauses, want one per 2 entries compared", pauses)
	}
	if diffs, err := r.Verify(nil); err != nil || len(diffs) > 0 {
		t.Errorf("check after: differences %v, err %v", diffs, err)
	}
}
