package reconciler

import (
	"net/netip"
	"slices"
	"testing"

	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
	"github.com/hivelet/hivelet/datapath"
)

func syncOne(t *testing.T, r *Reconciler, e ...lb.Entry) {
	t.Helper()
	changes := func(yield func(lb.Change) bool) { yield(lb.Change{Name: name(1), Entries: e}) }
	if _, err := r.Sync(changes, r.NeedsFull()); err != nil {
		t.Fatal(err)
	}
}

// Maglev tables and source ranges follow the Service: written with it,
// rewritten when its backends or ranges change, dropped with it.
func TestMaglevAndSourceRangesFollowTheService(t *testing.T) {
	m := datapath.NewFakeLBMap()
	r := New(m, quiet)
	r.SetMaglevTableSize(13)

	e := entry(1, 1, 2, 3)
	e.Flags = datapath.FlagLoadBalancer | datapath.FlagSourceRanges
	e.Algorithm = datapath.AlgMaglev
	e.SourceRanges = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
	syncOne(t, r, e)
	st, _ := m.Dump(nil)
	rn := st.Services[frontend(1)].RevNat
	table := m.Maglev[rn]
	if len(table) != 13 {
		t.Fatalf("Maglev table of %d slots, want 13", len(table))
	}
	ids := st.Services[frontend(1)].Backends
	for _, id := range table {
		if !slices.Contains(ids, id) {
			t.Fatalf("table names backend %d, not one of the service's %v", id, ids)
		}
	}
	if !slices.Equal(m.SourceRanges[rn], e.SourceRanges) {
		t.Errorf("source ranges %v, want %v", m.SourceRanges[rn], e.SourceRanges)
	}

	// A backend leaves: the table no longer names it.
	e2 := entry(1, 1, 2)
	e2.Flags, e2.Algorithm, e2.SourceRanges = e.Flags, e.Algorithm, []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
	syncOne(t, r, e2)
	st, _ = m.Dump(nil)
	ids = st.Services[frontend(1)].Backends
	for _, id := range m.Maglev[rn] {
		if !slices.Contains(ids, id) {
			t.Fatalf("after a backend left the table still names %d (service has %v)", id, ids)
		}
	}
	if !slices.Equal(m.SourceRanges[rn], e2.SourceRanges) {
		t.Errorf("source ranges %v, want %v", m.SourceRanges[rn], e2.SourceRanges)
	}

	// Back to random without ranges, then gone.
	e3 := entry(1, 1, 2)
	syncOne(t, r, e3)
	if _, ok := m.Maglev[rn]; ok {
		t.Error("Maglev table kept after the service went back to random")
	}
	if _, ok := m.SourceRanges[rn]; ok {
		t.Error("source ranges kept after the service dropped them")
	}
	syncOne(t, r)
	if len(m.Maglev)+len(m.SourceRanges) != 0 {
		t.Errorf("leftovers after delete: %v %v", m.Maglev, m.SourceRanges)
	}
}
