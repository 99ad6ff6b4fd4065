package reconciler

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
	"github.com/hivelet/hivelet/datapath"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func frontend(i int) datapath.Frontend {
	return datapath.Frontend{Addr: netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)}), Port: 80, Proto: datapath.TCP}
}

func backend(i int) datapath.Backend {
	return datapath.Backend{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 8080), Proto: datapath.TCP}
}

func entry(f int, backends ...int) lb.Entry {
	e := lb.Entry{Frontend: frontend(f)}
	for _, b := range backends {
		e.Backends = append(e.Backends, backend(b))
	}
	return e
}

func name(i int) lb.ServiceName {
	return lb.ServiceName{Namespace: "default", Name: fmt.Sprintf("svc-%d", i)}
}

// checkMaps asserts that the maps hold exactly want (frontend index ->
// backend indexes), nothing else, and that no reader ever saw damage.
func checkMaps(t *testing.T, r *Reconciler, m *datapath.FakeLBMap, want map[int][]int) {
	t.Helper()
	if len(m.Violations) > 0 {
		t.Fatalf("a reader could have seen inconsistent maps: %v", m.Violations[:min(3, len(m.Violations))])
	}
	st, err := m.Dump(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Services) != len(want) {
		t.Fatalf("%d services in maps, want %d", len(st.Services), len(want))
	}
	usedBackends := map[datapath.BackendID]bool{}
	entries := 0
	for f, bes := range want {
		s := st.Services[frontend(f)]
		if s == nil || s.Incomplete {
			t.Fatalf("frontend %s missing", frontend(f))
		}
		if got := len(s.Backends); got != len(bes) {
			t.Fatalf("frontend %s: %d backends, want %d", frontend(f), got, len(bes))
		}
		for i, id := range s.Backends {
			if st.Backends[id] != backend(bes[i]) {
				t.Fatalf("frontend %s slot %d: backend %v, want %v", frontend(f), i+1, st.Backends[id], backend(bes[i]))
			}
			usedBackends[id] = true
		}
		if st.RevNats[s.RevNat] != netip.AddrPortFrom(frontend(f).Addr, 80) {
			t.Fatalf("frontend %s: reverse NAT %d = %v", frontend(f), s.RevNat, st.RevNats[s.RevNat])
		}
		entries += 1 + len(bes)
	}
	if len(st.Backends) != len(usedBackends) {
		t.Errorf("%d backends in maps, %d used: leaked backends", len(st.Backends), len(usedBackends))
	}
	if len(st.RevNats) != len(want) {
		t.Errorf("%d reverse-NAT entries for %d frontends", len(st.RevNats), len(want))
	}
	if m.Entries() != entries {
		t.Errorf("%d services-map entries, want %d: leftover slots", m.Entries(), entries)
	}
	if u := r.Usage(); u.ServiceEntries != entries || u.Frontends != len(want) || u.Backends != len(usedBackends) {
		t.Errorf("Usage() = %+v, maps hold %d entries, %d frontends, %d backends", u, entries, len(want), len(usedBackends))
	}
}

func TestSyncProgramsAndIsIdempotent(t *testing.T) {
	m := datapath.NewFakeLBMap()
	r := New(m, quiet)
	d := newDesired(r)
	d.set(name(1), []lb.Entry{entry(1, 1, 2, 3)})
	d.set(name(2), []lb.Entry{entry(2, 3, 4)}) // backend 3 is shared
	if _, err := d.sync(false); err != nil {
		t.Fatal(err)
	}
	checkMaps(t, r, m, map[int][]int{1: {1, 2, 3}, 2: {3, 4}})
	if st, _ := m.Dump(nil); len(st.Backends) != 4 {
		t.Errorf("%d backends, want 4 (a shared backend has one id)", len(st.Backends))
	}

	writes := m.Writes
	for _, full := range []bool{false, true} {
		stats, err := d.sync(full)
		if err != nil {
			t.Fatal(err)
		}
		if m.Writes != writes || stats.Upserts+stats.Deletes != 0 {
			t.Errorf("sync(full=%v) of an unchanged state wrote %d entries", full, m.Writes-writes)
		}
	}
}

func TestSyncGrowShrinkDelete(t *testing.T) {
	m := datapath.NewFakeLBMap()
	r := New(m, quiet)
	d := newDesired(r)
	steps := []struct {
		set  map[int][]int // service index -> backends; nil removes
		want map[int][]int
	}{
		{map[int][]int{1: {1, 2}}, map[int][]int{1: {1, 2}}},
		{map[int][]int{1: {1, 2, 3, 4, 5}}, map[int][]int{1: {1, 2, 3, 4, 5}}},
		{map[int][]int{1: {5}}, map[int][]int{1: {5}}},
		{map[int][]int{1: {}}, map[int][]int{1: {}}},
		{map[int][]int{1: {6}, 2: {6}}, map[int][]int{1: {6}, 2: {6}}},
		{map[int][]int{1: nil}, map[int][]int{2: {6}}},
		{map[int][]int{2: nil}, map[int][]int{}},
	}
	for i, step := range steps {
		for svc, bes := range step.set {
			if bes == nil {
				d.set(name(svc), nil)
			} else {
				d.set(name(svc), []lb.Entry{entry(svc, bes...)})
			}
		}
		if _, err := d.sync(false); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		checkMaps(t, r, m, step.want)
	}
}

func TestRestartAdoptsPinnedState(t *testing.T) {
	m := datapath.NewFakeLBMap()
	first := newDesired(New(m, quiet))
	for i := 0; i < 50; i++ {
		first.set(name(i), []lb.Entry{entry(i, i, i+1, i+2)})
	}
	if _, err := first.sync(false); err != nil {
		t.Fatal(err)
	}
	before, _ := m.Dump(nil)

	// A new agent with the same desired state writes nothing at all.
	second := newDesired(New(m, quiet))
	for i := 0; i < 50; i++ {
		second.set(name(i), []lb.Entry{entry(i, i, i+1, i+2)})
	}
	writes := m.Writes
	if _, err := second.sync(false); err != nil {
		t.Fatal(err)
	}
	if m.Writes != writes {
		t.Errorf("restart rewrote %d entries", m.Writes-writes)
	}
	// New ids continue after the adopted ones.
	second.set(name(99), []lb.Entry{entry(99, 500)})
	if _, err := second.sync(false); err != nil {
		t.Fatal(err)
	}
	after, _ := m.Dump(nil)
	for id, b := range before.Backends {
		if after.Backends[id] != b {
			t.Errorf("backend id %d changed from %v to %v", id, b, after.Backends[id])
		}
	}
	if s := after.Services[frontend(99)]; s == nil || before.Backends[s.Backends[0]] != (datapath.Backend{}) {
		t.Errorf("new backend reused an adopted id: %+v", s)
	}
}

func TestFullSyncPrunesUnknownEntries(t *testing.T) {
	m := datapath.NewFakeLBMap()
	stale := newDesired(New(m, quiet))
	stale.set(name(7), []lb.Entry{entry(7, 70, 71)})
	if _, err := stale.sync(false); err != nil {
		t.Fatal(err)
	}
	r := New(m, quiet)
	d := newDesired(r)
	d.set(name(1), []lb.Entry{entry(1, 1)})
	if _, err := d.sync(false); err != nil {
		t.Fatal(err)
	}
	checkMaps(t, r, m, map[int][]int{1: {1}})
}

// TestSyncConvergesThroughFailures drives random changes with random map
// failures and checks that once a sync succeeds, the maps match the
// desired state exactly and no reader ever saw damage.
func TestSyncConvergesThroughFailures(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	m := datapath.NewFakeLBMap()
	r := New(m, quiet)
	r.chunk = 3 // many batches per sync, so failures hit the pipeline mid-way
	d := newDesired(r)
	want := map[int][]int{}
	for round := 0; round < 300; round++ {
		for n := rng.IntN(4); n >= 0; n-- {
			svc := rng.IntN(20)
			if rng.IntN(5) == 0 {
				delete(want, svc)
				d.set(name(svc), nil)
				continue
			}
			var bes []int
			for b := rng.IntN(5); b > 0; b-- {
				bes = append(bes, rng.IntN(30))
			}
			bes = uniqueSorted(bes)
			want[svc] = bes
			d.set(name(svc), []lb.Entry{entry(svc, bes...)})
		}
		if rng.IntN(3) == 0 {
			m.FailAfter = m.Writes + 1 + rng.IntN(6)
		}
		_, err := d.sync(rng.IntN(10) == 0)
		m.FailAfter = 0
		if err != nil {
			continue
		}
		checkMaps(t, r, m, want)
	}
	if _, err := d.sync(false); err != nil {
		t.Fatal(err)
	}
	checkMaps(t, r, m, want)
}

// desired plays the change tracker: it holds what each Service wants
// and hands the reconciler the changed ones, or all when a full sync is due.
type desired struct {
	r     *Reconciler
	want  map[lb.ServiceName][]lb.Entry
	dirty map[lb.ServiceName]bool
}

func newDesired(r *Reconciler) *desired {
	return &desired{r: r, want: map[lb.ServiceName][]lb.Entry{}, dirty: map[lb.ServiceName]bool{}}
}

func (d *desired) set(n lb.ServiceName, entries []lb.Entry) {
	if entries == nil {
		delete(d.want, n)
	} else {
		d.want[n] = entries
	}
	d.dirty[n] = true
}

func (d *desired) sync(full bool) (Stats, error) {
	full = full || d.r.NeedsFull()
	var changes []lb.Change
	for n := range d.dirty {
		if _, ok := d.want[n]; !ok {
			changes = append(changes, lb.Change{Name: n})
		}
	}
	for n, e := range d.want {
		if full || d.dirty[n] {
			changes = append(changes, lb.Change{Name: n, Entries: e})
		}
	}
	d.dirty = map[lb.ServiceName]bool{}
	return d.r.Sync(slices.Values(changes), full)
}

func uniqueSorted(in []int) []int {
	seen := map[int]bool{}
	var out []int
	for i := 0; i < 30; i++ {
		for _, v := range in {
			if v == i && !seen[v] {
				seen[v] = true
				out = append(out, v)
			}
		}
	}
	return out
}

func TestMapFullIsReported(t *testing.T) {
	m := datapath.NewFakeLBMap()
	m.MaxSlots = 4
	r := New(m, quiet)
	d := newDesired(r)
	d.set(name(1), []lb.Entry{entry(1, 1, 2)})
	if _, err := d.sync(false); err != nil {
		t.Fatal(err)
	}
	d.set(name(2), []lb.Entry{entry(2, 3, 4)})
	if _, err := d.sync(false); !errors.Is(err, datapath.ErrMapFull) {
		t.Fatalf("err = %v, want ErrMapFull", err)
	}
	// What was there keeps serving.
	st, _ := m.Dump(nil)
	if s := st.Services[frontend(1)]; s == nil || len(s.Backends) != 2 {
		t.Errorf("service 1 after a full map: %+v", s)
	}
}

// Backend and reverse-NAT ids index arrays: they stay below the array
// sizes through churn (freed ids are reused after a wrap-around), running
// out fails the sync with ErrMapFull, and freeing ids recovers.
func TestIDsStayInTheArrays(t *testing.T) {
	m := datapath.NewFakeLBMap()
	// ids 1..9 and 1..3: a replacement holds old and new backends until
	// the sync ends, 2+3+3 here.
	m.BackendLimit, m.RevNatLimit = 10, 4
	r := New(m, quiet)
	d := newDesired(r)
	d.set(name(1), []lb.Entry{entry(1, 1, 2)})
	for round := range 20 {
		b := 10 + 3*round // three backends never seen before
		d.set(name(2), []lb.Entry{entry(2, b, b+1, b+2)})
		if _, err := d.sync(round%5 == 4); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		checkMaps(t, r, m, map[int][]int{1: {1, 2}, 2: {b, b + 1, b + 2}})
	}

	d.set(name(3), []lb.Entry{entry(3, 100, 101, 102, 103, 104)}) // 2+3+5 backends > 9
	if _, err := d.sync(false); !errors.Is(err, datapath.ErrMapFull) {
		t.Fatalf("10 backends in 9 ids: err = %v, want ErrMapFull", err)
	}
	// The failed sync wrote a reverse-NAT entry nothing names yet; the
	// next full sync deletes it, the one after reuses the id.
	d.set(name(3), []lb.Entry{entry(3, 100)})
	if _, err := d.sync(true); err == nil {
		t.Log("recovered in one sync")
	} else if _, err := d.sync(true); err != nil {
		t.Fatalf("after shrinking to 6 backends: %v", err)
	}
	d.set(name(4), []lb.Entry{entry(4, 1)}) // a fourth frontend: 3 reverse-NAT ids only
	if _, err := d.sync(false); !errors.Is(err, datapath.ErrMapFull) {
		t.Fatalf("4 frontends in 3 reverse-NAT ids: err = %v, want ErrMapFull", err)
	}
	// Ids freed by a sync are reused by the next one.
	d.set(name(4), nil)
	d.set(name(1), nil)
	if _, err := d.sync(true); err != nil {
		t.Fatal(err)
	}
	d.set(name(4), []lb.Entry{entry(4, 1)})
	if _, err := d.sync(false); err != nil {
		t.Fatalf("after freeing a frontend: %v", err)
	}
	checkMaps(t, r, m, map[int][]int{2: {67, 68, 69}, 3: {100}, 4: {1}})
}

// A reverse-NAT id a sync frees is not reused by that sync: its delete
// goes out at the end of the batch and would empty the new entry.
func TestRevNatIDFreedBySyncNotReusedByIt(t *testing.T) {
	m := datapath.NewFakeLBMap()
	m.RevNatLimit = 5 // ids 1..4
	r := New(m, quiet)
	d := newDesired(r)
	steps := []struct {
		del, add []int
		want     map[int][]int
	}{
		{add: []int{1}, want: map[int][]int{1: {1}}},                                // id 1
		{add: []int{2}, want: map[int][]int{1: {1}, 2: {2}}},                        // id 2
		{add: []int{3}, want: map[int][]int{1: {1}, 2: {2}, 3: {3}}},                // id 3
		{del: []int{3}, add: []int{4}, want: map[int][]int{1: {1}, 2: {2}, 4: {4}}}, // id 4; the next is 1 again
		// 1 is taken and 2 is freed by this very sync: 5 must get 3.
		{del: []int{2, 4}, add: []int{5}, want: map[int][]int{1: {1}, 5: {5}}},
	}
	for i, st := range steps {
		for _, f := range st.del {
			d.set(name(f), nil)
		}
		for _, f := range st.add {
			d.set(name(f), []lb.Entry{entry(f, f)})
		}
		if _, err := d.sync(false); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		checkMaps(t, r, m, st.want)
	}

	// With every other id taken, the freed one is not handed out: the
	// sync fails, and the next one (after the delete) takes it.
	d.set(name(2), []lb.Entry{entry(2, 2)})
	d.set(name(3), []lb.Entry{entry(3, 3)})
	if _, err := d.sync(false); err != nil {
		t.Fatal(err)
	}
	d.set(name(5), nil)
	d.set(name(6), []lb.Entry{entry(6, 6)})
	done := make(chan error, 1)
	go func() { _, err := d.sync(false); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, datapath.ErrMapFull) {
			t.Fatalf("the only free id freed by this sync: err = %v, want ErrMapFull", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("allocation never returned with the only free id freed by this sync")
	}
	if _, err := d.sync(true); err != nil {
		t.Fatalf("the sync after: %v", err)
	}
	checkMaps(t, r, m, map[int][]int{1: {1}, 2: {2}, 3: {3}, 6: {6}})
}

func TestFrontendConflictGoesToFirstName(t *testing.T) {
	for _, order := range [][]int{{1, 2}, {2, 1}} {
		m := datapath.NewFakeLBMap()
		r := New(m, quiet)
		d := newDesired(r)
		for _, svc := range order {
			// Both Services claim frontend 5; svc-1 sorts first.
			d.set(name(svc), []lb.Entry{entry(5, svc*10)})
			if _, err := d.sync(false); err != nil {
				t.Fatal(err)
			}
		}
		checkMaps(t, r, m, map[int][]int{5: {10}})
		// A full sync agrees.
		if _, err := d.sync(true); err != nil {
			t.Fatal(err)
		}
		checkMaps(t, r, m, map[int][]int{5: {10}})
	}
	// When the winner lets go, the loser is offered the frontend again,
	// by a partial sync.
	m := datapath.NewFakeLBMap()
	r := New(m, quiet)
	d := newDesired(r)
	for _, svc := range []int{2, 1} {
		d.set(name(svc), []lb.Entry{entry(5, svc*10)})
		if _, err := d.sync(false); err != nil {
			t.Fatal(err)
		}
	}
	d.set(name(1), nil)
	st, err := d.sync(false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(st.Reoffer, []lb.ServiceName{name(2)}) {
		t.Fatalf("reoffer %v, want [%v]", st.Reoffer, name(2))
	}
	checkMaps(t, r, m, map[int][]int{})
	d.dirty[name(2)] = true
	if _, err := d.sync(false); err != nil {
		t.Fatal(err)
	}
	checkMaps(t, r, m, map[int][]int{5: {20}})
}

func TestAffinityMatchesFollowBackends(t *testing.T) {
	m := datapath.NewFakeLBMap()
	r := New(m, quiet)
	d := newDesired(r)
	affine := func(f int, timeout uint32, bes ...int) []lb.Entry {
		e := entry(f, bes...)
		e.AffinityTimeout = timeout
		return []lb.Entry{e}
	}
	matches := func() map[[2]int]bool {
		st, _ := m.Dump(nil)
		out := map[[2]int]bool{}
		for k := range st.Affinity {
			s := st.Services[frontend(1)]
			if s == nil || k.RevNat != s.RevNat {
				t.Errorf("affinity match %+v for an unknown service", k)
				continue
			}
			out[[2]int{int(k.Backend), int(k.RevNat)}] = true
		}
		return out
	}
	steps := []struct {
		entries []lb.Entry
		want    int // affinity-match entries
	}{
		{affine(1, 30, 1, 2, 3), 3},
		{affine(1, 30, 2, 3), 2},
		{affine(1, 60, 2, 3, 4), 3},
		{affine(1, 0, 2, 3, 4), 0},
		{affine(1, 30, 5), 1},
		{nil, 0},
	}
	for i, s := range steps {
		d.set(name(1), s.entries)
		if _, err := d.sync(i%2 == 1); err != nil {
			t.Fatal(err)
		}
		if got := matches(); len(got) != s.want {
			t.Errorf("step %d: %d affinity matches, want %d", i, len(got), s.want)
		}
		if s.entries != nil {
			st, _ := m.Dump(nil)
			if got := st.Services[frontend(1)].AffinityTimeout; got != s.entries[0].AffinityTimeout {
				t.Errorf("step %d: timeout in the map %d, want %d", i, got, s.entries[0].AffinityTimeout)
			}
		}
	}
}
