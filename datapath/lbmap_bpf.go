package datapath

import (
	"errors"
	"net/netip"
	"sync/atomic"

	"github.com/cilium/ebpf"
)

// bpfLBMap is the LBMap backed by the pinned kernel maps.
type bpfLBMap struct {
	svc4, svc6 *ebpf.Map
	be4, be6   *ebpf.Map
	rn4, rn6   *ebpf.Map
	affm       *ebpf.Map
	srcr       *ebpf.Map
	maglev     *ebpf.Map // nil in read-only views

	// maglevIDs is the rev-NAT ids with a Maglev table, as this writer
	// last knew them (see maglevTables); nil means read them again.
	// Only Apply uses it, and Applies never run concurrently.
	maglevIDs map[uint32]struct{}
	// unwritten, when set and true, says the maps are still as created:
	// empty. A cold start's first full sync then skips reading them (a
	// read walks every bucket: ~3M at the default sizes). Shared by the
	// datapath's writers; nil in read-only views.
	unwritten *atomic.Bool
}

var _ LBMap = (*bpfLBMap)(nil)

// IDLimits implements LBMap: the array sizes.
func (m *bpfLBMap) IDLimits() (backends, revnats uint32) {
	return m.be4.MaxEntries(), m.rn4.MaxEntries()
}

// fresh reports whether the maps are known to be empty.
func (m *bpfLBMap) fresh() bool { return m.unwritten != nil && m.unwritten.Load() }

func newBPFLBMap(m *sockLBMaps) *bpfLBMap {
	return &bpfLBMap{
		svc4: m.HlLb4Svc, svc6: m.HlLb6Svc,
		be4: m.HlLb4Be, be6: m.HlLb6Be,
		rn4: m.HlLb4Rnat, rn6: m.HlLb6Rnat,
		affm: m.HlLbAffm, srcr: m.HlLbSrcr, maglev: m.HlLbMaglev,
	}
}

func lb4Key(f Frontend, slot int) sockLb4Key {
	return sockLb4Key{
		Address:     addr4ToMap(f.Addr),
		Dport:       htons(f.Port),
		BackendSlot: uint16(slot),
		Proto:       uint8(f.Proto),
		Scope:       uint8(f.Scope),
	}
}

func lb6Key(f Frontend, slot int) sockLb6Key {
	k := sockLb6Key{
		Dport:       htons(f.Port),
		BackendSlot: uint16(slot),
		Proto:       uint8(f.Proto),
		Scope:       uint8(f.Scope),
	}
	k.Address.Addr = f.Addr.As16()
	return k
}

func (m *bpfLBMap) Apply(c *Changes) error {
	if m.fresh() {
		m.unwritten.Store(false) // before the first write: a failed one leaves entries
		if m.maglevIDs == nil {
			m.maglevIDs = map[uint32]struct{}{}
		}
	}
	err := applyOrdered(m, c)
	if err != nil {
		// A partial write leaves the known Maglev tables uncertain.
		m.maglevIDs = nil
	}
	return err
}

func (m *bpfLBMap) putSlots(entries []slotEntry) error {
	n4 := countV4(entries)
	k4, v4 := make([]sockLb4Key, 0, n4), make([]sockLbService, 0, n4)
	k6, v6 := make([]sockLb6Key, 0, len(entries)-n4), make([]sockLbService, 0, len(entries)-n4)
	for _, e := range entries {
		if e.f.Addr.Is4() {
			k4 = append(k4, lb4Key(e.f, e.slot))
			v4 = append(v4, e.v)
		} else {
			k6 = append(k6, lb6Key(e.f, e.slot))
			v6 = append(v6, e.v)
		}
	}
	if err := putAll(m.svc4, k4, v4); err != nil {
		return err
	}
	return putAll(m.svc6, k6, v6)
}

func countV4(entries []slotEntry) int {
	n := 0
	for i := range entries {
		if entries[i].f.Addr.Is4() {
			n++
		}
	}
	return n
}

func (m *bpfLBMap) deleteSlots(entries []slotEntry) error {
	n4 := countV4(entries)
	k4, k6 := make([]sockLb4Key, 0, n4), make([]sockLb6Key, 0, len(entries)-n4)
	for _, e := range entries {
		if e.f.Addr.Is4() {
			k4 = append(k4, lb4Key(e.f, e.slot))
		} else {
			k6 = append(k6, lb6Key(e.f, e.slot))
		}
	}
	if err := deleteAll(m.svc4, k4); err != nil {
		return err
	}
	return deleteAll(m.svc6, k6)
}

func (m *bpfLBMap) putBackends(bes []BackendEntry) error {
	k4, v4 := make([]uint32, 0, len(bes)), make([]sockLb4Backend, 0, len(bes))
	var (
		k6 []uint32
		v6 []sockLb6Backend
	)
	for _, b := range bes {
		if b.Addr.Addr().Is4() {
			k4 = append(k4, uint32(b.ID))
			v4 = append(v4, sockLb4Backend{Address: addr4ToMap(b.Addr.Addr()), Port: htons(b.Addr.Port()), Proto: uint8(b.Proto), Flags: backendFlags(b.Backend)})
		} else {
			v := sockLb6Backend{Port: htons(b.Addr.Port()), Proto: uint8(b.Proto), Flags: backendFlags(b.Backend)}
			v.Address.Addr = b.Addr.Addr().As16()
			k6 = append(k6, uint32(b.ID))
			v6 = append(v6, v)
		}
	}
	if err := putAll(m.be4, k4, v4); err != nil {
		return err
	}
	return putAll(m.be6, k6, v6)
}

func (m *bpfLBMap) putRevNats(rns []RevNatEntry) error {
	var (
		k4, k6 []uint32
		v4     []sockLb4ReverseNat
		v6     []sockLb6ReverseNat
	)
	for _, rn := range rns {
		ap := rn.Addr
		if ap.Addr().Is4() {
			k4 = append(k4, uint32(rn.ID))
			v4 = append(v4, sockLb4ReverseNat{Address: addr4ToMap(ap.Addr()), Port: htons(ap.Port())})
		} else {
			v := sockLb6ReverseNat{Port: htons(ap.Port())}
			v.Address.Addr = ap.Addr().As16()
			k6 = append(k6, uint32(rn.ID))
			v6 = append(v6, v)
		}
	}
	if err := putAll(m.rn4, k4, v4); err != nil {
		return err
	}
	return putAll(m.rn6, k6, v6)
}

func affinityKeys(ms []AffinityMatch) []sockLbAffinityMatchKey {
	keys := make([]sockLbAffinityMatchKey, len(ms))
	for i, m := range ms {
		keys[i] = sockLbAffinityMatchKey{BackendId: uint32(m.Backend), RevNatId: uint32(m.RevNat)}
	}
	return keys
}

func (m *bpfLBMap) putAffinity(ms []AffinityMatch) error {
	return putAll(m.affm, affinityKeys(ms), make([]uint8, len(ms)))
}

func (m *bpfLBMap) deleteAffinity(ms []AffinityMatch) error {
	return deleteAll(m.affm, affinityKeys(ms))
}

// deleteBackendsAndRevNats empties ids in both families' arrays (an id
// lives in one of them; emptying the other's entry changes nothing).
func (m *bpfLBMap) deleteBackendsAndRevNats(bes []BackendID, rns []RevNatID) error {
	beKeys := make([]uint32, len(bes))
	for i, id := range bes {
		beKeys[i] = uint32(id)
	}
	rnKeys := make([]uint32, len(rns))
	for i, id := range rns {
		rnKeys[i] = uint32(id)
	}
	return errors.Join(
		putAll(m.be4, beKeys, make([]sockLb4Backend, len(beKeys))),
		putAll(m.be6, beKeys, make([]sockLb6Backend, len(beKeys))),
		putAll(m.rn4, rnKeys, make([]sockLb4ReverseNat, len(rnKeys))),
		putAll(m.rn6, rnKeys, make([]sockLb6ReverseNat, len(rnKeys))),
	)
}

// Dump implements LBMap.
func (m *bpfLBMap) Dump(pause func()) (*State, error) {
	st := NewState()
	if m.fresh() {
		return st, nil
	}
	p := &pauseEvery{pause: pause}
	if err := m.dumpServices(st, p); err != nil {
		return nil, err
	}
	bk4, bv4, err := dumpArray(m.be4, p, func(v *sockLb4Backend) bool { return v.Port != 0 })
	if err != nil {
		return nil, err
	}
	for i, id := range bk4 {
		p.tick(1)
		v := bv4[i]
		st.Backends[BackendID(id)] = Backend{Addr: netip.AddrPortFrom(addr4FromMap(v.Address), ntohs(v.Port)), Proto: L4Proto(v.Proto), Local: v.Flags&backendLocal != 0}
	}
	bk6, bv6, err := dumpArray(m.be6, p, func(v *sockLb6Backend) bool { return v.Port != 0 })
	if err != nil {
		return nil, err
	}
	for i, id := range bk6 {
		p.tick(1)
		v := bv6[i]
		st.Backends[BackendID(id)] = Backend{Addr: netip.AddrPortFrom(netip.AddrFrom16(v.Address.Addr), ntohs(v.Port)), Proto: L4Proto(v.Proto), Local: v.Flags&backendLocal != 0}
	}
	rk4, rv4, err := dumpArray(m.rn4, p, func(v *sockLb4ReverseNat) bool { return v.Port != 0 })
	if err != nil {
		return nil, err
	}
	for i, id := range rk4 {
		p.tick(1)
		st.RevNats[RevNatID(id)] = netip.AddrPortFrom(addr4FromMap(rv4[i].Address), ntohs(rv4[i].Port))
	}
	rk6, rv6, err := dumpArray(m.rn6, p, func(v *sockLb6ReverseNat) bool { return v.Port != 0 })
	if err != nil {
		return nil, err
	}
	for i, id := range rk6 {
		p.tick(1)
		st.RevNats[RevNatID(id)] = netip.AddrPortFrom(netip.AddrFrom16(rv6[i].Address.Addr), ntohs(rv6[i].Port))
	}
	ak, _, err := dumpAll[sockLbAffinityMatchKey, uint8](m.affm, p)
	if err != nil {
		return nil, err
	}
	for _, k := range ak {
		p.tick(1)
		st.Affinity[AffinityMatch{Backend: BackendID(k.BackendId), RevNat: RevNatID(k.RevNatId)}] = true
	}
	return st, nil
}

func (m *bpfLBMap) dumpServices(st *State, p *pauseEvery) error {
	k4, v4, err := dumpAll[sockLb4Key, sockLbService](m.svc4, p)
	if err != nil {
		return err
	}
	for i, k := range k4 {
		p.tick(1)
		f := Frontend{Addr: addr4FromMap(k.Address), Port: ntohs(k.Dport), Proto: L4Proto(k.Proto), Scope: Scope(k.Scope)}
		addSlot(st, f, int(k.BackendSlot), v4[i])
	}
	k6, v6, err := dumpAll[sockLb6Key, sockLbService](m.svc6, p)
	if err != nil {
		return err
	}
	for i, k := range k6 {
		p.tick(1)
		f := Frontend{Addr: netip.AddrFrom16(k.Address.Addr), Port: ntohs(k.Dport), Proto: L4Proto(k.Proto), Scope: Scope(k.Scope)}
		addSlot(st, f, int(k.BackendSlot), v6[i])
	}
	finishDump(st)
	return nil
}

// finishDump trims each service's backends to its slot 0 count. Slots
// beyond it are leftovers readers never use; MaxSlot still covers them so
// they get deleted.
func finishDump(st *State) {
	for _, s := range st.Services {
		if !s.Incomplete {
			s.Backends = growTo(s.Backends[:min(len(s.Backends), s.count)], s.count)
		}
	}
}

// addSlot folds one services-map entry into st. Backend slots are placed
// by index; a missing slot stays 0 so the reconciler sees the damage.
func addSlot(st *State, f Frontend, slot int, v sockLbService) {
	s, ok := st.Services[f]
	if !ok {
		s = &DumpedService{Service: Service{Frontend: f}, Incomplete: true}
		st.Services[f] = s
	}
	if slot == 0 {
		s.Incomplete = false
		s.RevNat = RevNatID(v.RevNatIndex)
		// The affinity bit is written from AffinityTimeout (masterValue)
		// and read back into it, not into Flags: a record compared with
		// the dump must not see a flag it never set.
		s.Flags = ServiceFlags(v.Flags) &^ FlagAffinity
		if v.Flags&uint8(FlagAffinity) != 0 {
			s.AffinityTimeout = v.BackendId
		}
		s.Algorithm = Algorithm(v.Algorithm)
		s.count = int(v.Count)
		return
	}
	s.MaxSlot = max(s.MaxSlot, slot)
	s.Backends = growTo(s.Backends, slot)
	s.Backends[slot-1] = BackendID(v.BackendId)
}

func growTo(ids []BackendID, n int) []BackendID {
	for len(ids) < n {
		ids = append(ids, 0)
	}
	return ids
}
