package datapath

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// A Maglev table lives as long as its service uses Maglev, also across a
// new writer on the same pins (which learns the tables from the kernel).
func TestPrivilegedMaglevTables(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: BPF maps")
	}
	bpffs := filepath.Join(t.TempDir(), "bpffs")
	cfg := Config{BPFFSDir: bpffs, Sizes: MapSizes{Services: 1024, Backends: 1024, RevNat: 1024, SockRevNat: 1024, Maglev: 64}, MaglevTableSize: 7}
	dp, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Close(); _ = Cleanup(bpffs) })
	svc := func(rn RevNatID, maglev bool) Service {
		s := Service{Frontend: Frontend{Addr: netip.AddrFrom4([4]byte{10, 96, 0, byte(rn)}), Port: 80, Proto: TCP}, RevNat: rn, Backends: []BackendID{1}}
		if maglev {
			s.Algorithm = AlgMaglev
			s.Maglev = []BackendID{1, 1, 1, 1, 1, 1, 1}
		}
		return s
	}
	changes := func(ss ...Service) *Changes {
		c := &Changes{UpsertBackends: []BackendEntry{{ID: 1, Backend: Backend{Addr: netip.MustParseAddrPort("10.0.0.1:8080"), Proto: TCP}}}}
		for _, s := range ss {
			c.UpsertRevNats = append(c.UpsertRevNats, RevNatEntry{ID: s.RevNat, Addr: netip.AddrPortFrom(s.Frontend.Addr, s.Frontend.Port)})
			c.UpsertServices = append(c.UpsertServices, ServiceUpdate{Service: s, PrevSlots: 1})
		}
		return c
	}
	tables := func(w LBMap) map[uint32]bool {
		got := map[uint32]bool{}
		var k, next uint32
		var key any
		for w.(*bpfLBMap).maglev.NextKey(key, &next) == nil {
			got[next] = true
			k = next
			key = &k
		}
		return got
	}
	w := dp.LBMap()
	if err := w.Apply(changes(svc(1, true), svc(2, true), svc(3, false))); err != nil {
		t.Fatal(err)
	}
	if got := tables(w); len(got) != 2 || !got[1] || !got[2] {
		t.Fatalf("tables for rev-NATs %v, want 1 and 2", got)
	}
	// Service 1 leaves Maglev; a fresh writer (as after a restart) must
	// still delete its table, which it only knows from the kernel.
	w2 := dp.LBMap()
	if err := w2.Apply(changes(svc(1, false), svc(3, false))); err != nil {
		t.Fatal(err)
	}
	if got := tables(w2); len(got) != 1 || !got[2] {
		t.Fatalf("tables for rev-NATs %v after service 1 left Maglev, want only 2", got)
	}
	// And a deleted service's table goes with it.
	if err := w2.Apply(&Changes{DeleteServices: []ServiceDelete{{Frontend: svc(2, true).Frontend, PrevSlots: 1}}, DeleteRevNats: []RevNatID{2}}); err != nil {
		t.Fatal(err)
	}
	if got := tables(w2); len(got) != 0 {
		t.Fatalf("tables for rev-NATs %v after service 2 was deleted, want none", got)
	}
}

// Source ranges follow their service: a narrowed list drops the prefixes
// it no longer names, a service without ranges or gone drops all of its.
func TestPrivilegedSourceRanges(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: BPF maps")
	}
	bpffs := filepath.Join(t.TempDir(), "bpffs")
	dp, err := Load(Config{BPFFSDir: bpffs, Sizes: MapSizes{Services: 1024, Backends: 1024, RevNat: 1024, SockRevNat: 1024, SrcRanges: 64}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Close(); _ = Cleanup(bpffs) })
	w := dp.LBMap().(*bpfLBMap)
	p1, p2 := netip.MustParsePrefix("203.0.113.0/28"), netip.MustParsePrefix("192.0.2.128/25")
	svc := func(rn RevNatID, ranges ...netip.Prefix) ServiceUpdate {
		s := Service{Frontend: Frontend{Addr: netip.AddrFrom4([4]byte{10, 96, 1, byte(rn)}), Port: 443, Proto: TCP}, RevNat: rn, SourceRanges: ranges}
		if len(ranges) > 0 {
			s.Flags = FlagLoadBalancer | FlagSourceRanges
		}
		return ServiceUpdate{Service: s}
	}
	ranges := func() map[uint32][]string {
		got := map[uint32][]string{}
		var k sockLbSrcrangeKey
		var v uint8
		for it := w.srcr.Iterate(); it.Next(&k, &v); {
			got[k.RevNatId] = append(got[k.RevNatId], fmt.Sprint(k.Prefixlen))
		}
		return got
	}
	apply := func(c *Changes) {
		t.Helper()
		if err := w.Apply(c); err != nil {
			t.Fatal(err)
		}
	}
	apply(&Changes{UpsertServices: []ServiceUpdate{svc(1, p1, p2), svc(2, p1)}})
	if got := ranges(); len(got[1]) != 2 || len(got[2]) != 1 {
		t.Fatalf("ranges %v, want 2 for rev-NAT 1 and 1 for 2", got)
	}
	apply(&Changes{UpsertServices: []ServiceUpdate{svc(1, p2)}})
	if got := ranges(); len(got[1]) != 1 || got[1][0] != fmt.Sprint(32+96+25) || len(got[2]) != 1 {
		t.Fatalf("ranges %v after rev-NAT 1 narrowed to %s", got, p2)
	}
	apply(&Changes{UpsertServices: []ServiceUpdate{svc(1)}, DeleteRevNats: []RevNatID{2}})
	if got := ranges(); len(got) != 0 {
		t.Fatalf("ranges %v after both services lost theirs, want none", got)
	}
}
