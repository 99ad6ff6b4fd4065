package reconciler

import (
	"strings"
	"testing"

	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
	"github.com/hivelet/hivelet/datapath"
)

// tamperedMap is the fake maps as another writer left them: tamper edits
// what a dump reads; during runs while the dump is read.
type tamperedMap struct {
	*datapath.FakeLBMap
	tamper func(*datapath.State)
	during func()
}

func (m *tamperedMap) Dump() (*datapath.State, error) {
	if m.during != nil {
		m.during()
	}
	st, err := m.FakeLBMap.Dump()
	if err == nil && m.tamper != nil {
		m.tamper(st)
	}
	return st, err
}

func TestVerifyFindsDriftWithoutHoldingUpSyncs(t *testing.T) {
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
		diffs, conclusive, err := r.Verify()
		if err != nil || !conclusive {
			t.Fatalf("%s: conclusive %v, err %v", what, conclusive, err)
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

	// A sync while the maps are read makes the comparison meaningless;
	// it must not report the sync's own writes as drift.
	m.tamper = nil
	m.during = func() {
		d.set(name(3), []lb.Entry{entry(3, 4)})
		if _, err := d.sync(false); err != nil {
			t.Fatal(err)
		}
	}
	if diffs, conclusive, err := r.Verify(); err != nil || conclusive || len(diffs) > 0 {
		t.Errorf("verify racing a sync: differences %v, conclusive %v, err %v", diffs, conclusive, err)
	}
	m.during = nil
	check("after the racing sync", "")
}
