package datapath_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/hivelet/hivelet/datapath"
	"github.com/hivelet/hivelet/test/testnet"
)

// loadExtras loads the datapath with small maps in a private bpffs.
func loadExtras(t *testing.T, cfg datapath.Config) *datapath.Datapath {
	t.Helper()
	testnet.RequireRoot(t)
	cfg.BPFFSDir = filepath.Join(t.TempDir(), "bpffs")
	cfg.Sizes.Services, cfg.Sizes.Backends, cfg.Sizes.RevNat, cfg.Sizes.SockRevNat = 1024, 1024, 1024, 1024
	dp, err := datapath.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Close(); _ = datapath.Cleanup(cfg.BPFFSDir) })
	return dp
}

// A Maglev table lives as long as its service uses Maglev, also across a
// new writer on the same pins (which learns the tables from the kernel).
func TestPrivilegedMaglevTables(t *testing.T) {
	dp := loadExtras(t, datapath.Config{Sizes: datapath.MapSizes{Maglev: 64}, MaglevTableSize: 7})
	svc := func(rn datapath.RevNatID, maglev bool) datapath.Service {
		s := datapath.Service{Frontend: datapath.Frontend{Addr: netip.AddrFrom4([4]byte{10, 96, 0, byte(rn)}), Port: 80, Proto: datapath.TCP}, RevNat: rn, Backends: []datapath.BackendID{1}}
		if maglev {
			s.Algorithm = datapath.AlgMaglev
			s.Maglev = []datapath.BackendID{1, 1, 1, 1, 1, 1, 1}
		}
		return s
	}
	changes := func(ss ...datapath.Service) *datapath.Changes {
		c := &datapath.Changes{UpsertBackends: []datapath.BackendEntry{{ID: 1, Backend: datapath.Backend{Addr: netip.MustParseAddrPort("10.0.0.1:8080"), Proto: datapath.TCP}}}}
		for _, s := range ss {
			c.UpsertRevNats = append(c.UpsertRevNats, datapath.RevNatEntry{ID: s.RevNat, Addr: netip.AddrPortFrom(s.Frontend.Addr, s.Frontend.Port)})
			c.UpsertServices = append(c.UpsertServices, datapath.ServiceUpdate{Service: s, PrevSlots: 1})
		}
		return c
	}
	tables := func(w datapath.LBMap) map[uint32]struct{} {
		t.Helper()
		got, err := datapath.MaglevTableIDs(w)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	w := dp.LBMap()
	if err := w.Apply(changes(svc(1, true), svc(2, true), svc(3, false))); err != nil {
		t.Fatal(err)
	}
	has := func(set map[uint32]struct{}, id uint32) bool { _, ok := set[id]; return ok }
	if got := tables(w); len(got) != 2 || !has(got, 1) || !has(got, 2) {
		t.Fatalf("tables for rev-NATs %v, want 1 and 2", got)
	}
	// datapath.Service 1 leaves Maglev; a fresh writer (as after a restart) must
	// still delete its table, which it only knows from the kernel.
	w2 := dp.LBMap()
	if err := w2.Apply(changes(svc(1, false), svc(3, false))); err != nil {
		t.Fatal(err)
	}
	if got := tables(w2); len(got) != 1 || !has(got, 2) {
		t.Fatalf("tables for rev-NATs %v after service 1 left Maglev, want only 2", got)
	}
	// And a deleted service's table goes with it.
	if err := w2.Apply(&datapath.Changes{DeleteServices: []datapath.ServiceDelete{{Frontend: svc(2, true).Frontend, PrevSlots: 1}}, DeleteRevNats: []datapath.RevNatID{2}}); err != nil {
		t.Fatal(err)
	}
	if got := tables(w2); len(got) != 0 {
		t.Fatalf("tables for rev-NATs %v after service 2 was deleted, want none", got)
	}
}

// Source ranges follow their service: a narrowed list drops the prefixes
// it no longer names, a service without ranges or gone drops all of its.
func TestPrivilegedSourceRanges(t *testing.T) {
	dp := loadExtras(t, datapath.Config{Sizes: datapath.MapSizes{SrcRanges: 64}})
	w := dp.LBMap()
	p1, p2 := netip.MustParsePrefix("203.0.113.0/28"), netip.MustParsePrefix("192.0.2.128/25")
	svc := func(rn datapath.RevNatID, ranges ...netip.Prefix) datapath.ServiceUpdate {
		s := datapath.Service{Frontend: datapath.Frontend{Addr: netip.AddrFrom4([4]byte{10, 96, 1, byte(rn)}), Port: 443, Proto: datapath.TCP}, RevNat: rn, SourceRanges: ranges}
		if len(ranges) > 0 {
			s.Flags = datapath.FlagLoadBalancer | datapath.FlagSourceRanges
		}
		return datapath.ServiceUpdate{Service: s}
	}
	ranges := func() map[uint32][]uint32 {
		t.Helper()
		got, err := datapath.SourceRangeLens(w)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	apply := func(c *datapath.Changes) {
		t.Helper()
		if err := w.Apply(c); err != nil {
			t.Fatal(err)
		}
	}
	apply(&datapath.Changes{UpsertServices: []datapath.ServiceUpdate{svc(1, p1, p2), svc(2, p1)}})
	if got := ranges(); len(got[1]) != 2 || len(got[2]) != 1 {
		t.Fatalf("ranges %v, want 2 for rev-NAT 1 and 1 for 2", got)
	}
	apply(&datapath.Changes{UpsertServices: []datapath.ServiceUpdate{svc(1, p2)}})
	if got := ranges(); len(got[1]) != 1 || got[1][0] != 32+96+25 || len(got[2]) != 1 {
		t.Fatalf("ranges %v after rev-NAT 1 narrowed to %s", got, p2)
	}
	apply(&datapath.Changes{UpsertServices: []datapath.ServiceUpdate{svc(1)}, DeleteRevNats: []datapath.RevNatID{2}})
	if got := ranges(); len(got) != 0 {
		t.Fatalf("ranges %v after both services lost theirs, want none", got)
	}
}

// Maps this Load created are known empty until written, so a cold start's
// first full sync skips reading them; every other writer and a restart
// on the same pins read what was written.
func TestPrivilegedFreshMapsDump(t *testing.T) {
	testnet.RequireRoot(t)
	cfg := datapath.Config{BPFFSDir: filepath.Join(t.TempDir(), "bpffs"),
		Sizes: datapath.MapSizes{Services: 1024, Backends: 1024, RevNat: 1024, SockRevNat: 1024}}
	t.Cleanup(func() { _ = datapath.Cleanup(cfg.BPFFSDir) })
	dump := func(w datapath.LBMap) *datapath.State {
		t.Helper()
		st, err := w.Dump(nil)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	dp, err := datapath.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := dp.LBMap()
	if st := dump(w); len(st.Services) != 0 || len(st.Backends) != 0 || len(st.RevNats) != 0 {
		t.Fatalf("fresh maps dump %+v, want empty", st)
	}
	f := datapath.Frontend{Addr: netip.MustParseAddr("10.96.0.1"), Port: 80, Proto: datapath.TCP}
	if err := w.Apply(&datapath.Changes{
		UpsertBackends: []datapath.BackendEntry{{ID: 1, Backend: datapath.Backend{Addr: netip.MustParseAddrPort("10.0.0.1:8080"), Proto: datapath.TCP}}},
		UpsertRevNats:  []datapath.RevNatEntry{{ID: 1, Addr: netip.AddrPortFrom(f.Addr, f.Port)}},
		UpsertServices: []datapath.ServiceUpdate{{Service: datapath.Service{Frontend: f, RevNat: 1, Backends: []datapath.BackendID{1}}}},
	}); err != nil {
		t.Fatal(err)
	}
	check := func(who string, st *datapath.State) {
		t.Helper()
		if len(st.Services) != 1 || len(st.Backends) != 1 || len(st.RevNats) != 1 {
			t.Errorf("%s: dump has %d services, %d backends, %d rev-NATs, want 1 of each", who, len(st.Services), len(st.Backends), len(st.RevNats))
		}
	}
	check("the writer", dump(w))
	check("another writer of the same datapath", dump(dp.LBMap()))
	dp.Close()

	dp, err = datapath.Load(cfg) // a restart: the pins exist
	if err != nil {
		t.Fatal(err)
	}
	defer dp.Close()
	w = dp.LBMap()
	check("a writer after a restart", dump(w))
	ro, closeRO, err := datapath.ReadOnlyLBMap(cfg.BPFFSDir)
	if err != nil {
		t.Fatal(err)
	}
	check("a read-only view", dump(ro))
	closeRO()

	// Backends and reverse-NAT entries live in arrays: a delete empties
	// the entry, and empty entries are not read back.
	if err := w.Apply(&datapath.Changes{
		DeleteServices: []datapath.ServiceDelete{{Frontend: f, PrevSlots: 1}},
		DeleteBackends: []datapath.BackendID{1},
		DeleteRevNats:  []datapath.RevNatID{1},
	}); err != nil {
		t.Fatal(err)
	}
	if st := dump(w); len(st.Services) != 0 || len(st.Backends) != 0 || len(st.RevNats) != 0 {
		t.Errorf("after deleting everything: %d services, %d backends, %d rev-NATs", len(st.Services), len(st.Backends), len(st.RevNats))
	}
}

// The conntrack, SNAT and external-affinity maps are created only when
// something needs them (the TC datapath, the conntrack tools), at the
// configured size; until then the CLI's view sees no flows.
func TestPrivilegedPerPacketMapsLazy(t *testing.T) {
	cfg := datapath.Config{Sizes: datapath.MapSizes{CT: 4096, NAT: 2048, Affinity: 1024}}
	dp := loadExtras(t, cfg)
	bpffs := datapath.BPFFSDirOf(dp)
	pinned := func(name string) bool {
		_, err := os.Stat(filepath.Join(bpffs, name))
		return err == nil
	}
	for _, n := range []string{"hl_ct", "hl_nat", "hl_lb_affx"} {
		if pinned(n) {
			t.Errorf("%s exists after the socket LB loaded", n)
		}
	}
	view, err := datapath.OpenPinnedHost(bpffs)
	if err != nil {
		t.Fatalf("CLI view without per-packet maps: %v", err)
	}
	if ct, err := view.Conntrack(); err != nil || len(ct) != 0 {
		t.Errorf("CLI view without per-packet maps: %d entries, %v; want none", len(ct), err)
	}
	view.Close()

	if _, err := dp.Conntrack(); err != nil {
		t.Fatal(err)
	}
	for n, want := range map[string]uint32{"hl_ct": 4096, "hl_nat": 2048, "hl_lb_affx": 1024} {
		m, err := ebpf.LoadPinnedMap(filepath.Join(bpffs, n), nil)
		if err != nil {
			t.Fatalf("%s after Conntrack: %v", n, err)
		}
		if got := m.MaxEntries(); got != want {
			t.Errorf("%s holds %d entries, want %d", n, got, want)
		}
		m.Close()
	}
	// The per-packet programs load against the pins (side by side).
	if _, _, err := dp.RunHost(datapath.HostIngress, 1, make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
}
