package datapath

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sync"
)

// FakeLBMap is an in-memory LBMap with the kernel maps' semantics, for
// tests of everything above the datapath. It checks after every single
// entry write that no reader could see a dangling slot or backend, and it
// can be told to fail.
type FakeLBMap struct {
	mu       sync.Mutex
	slots    map[fakeSlotKey]sockLbService // guarded by mu
	backends map[BackendID]Backend         // guarded by mu
	revnats  map[RevNatID]netip.AddrPort   // guarded by mu
	affinity map[AffinityMatch]bool        // guarded by mu
	// Maglev and SourceRanges hold the per-packet extras by rev-NAT id.
	Maglev       map[RevNatID][]BackendID    // guarded by mu
	SourceRanges map[RevNatID][]netip.Prefix // guarded by mu

	// BackendLimit and RevNatLimit are IDLimits; unlimited when 0.
	BackendLimit, RevNatLimit uint32

	// FailAfter, when > 0, makes the write after that many successful
	// entry writes fail (and every one after it until reset).
	FailAfter int
	// MaxSlots, when > 0, is the services map capacity.
	MaxSlots int
	// Writes counts successful entry writes and deletes.
	Writes int
	// Violations lists invariant breaks seen between entry writes.
	Violations []string
}

type fakeSlotKey struct {
	f    Frontend
	slot int
}

var _ LBMap = (*FakeLBMap)(nil)

// ErrInjected is returned by a FakeLBMap told to fail.
var ErrInjected = errors.New("injected failure")

// NewFakeLBMap returns an empty fake.
func NewFakeLBMap() *FakeLBMap {
	return &FakeLBMap{
		slots:        map[fakeSlotKey]sockLbService{},
		backends:     map[BackendID]Backend{},
		revnats:      map[RevNatID]netip.AddrPort{},
		affinity:     map[AffinityMatch]bool{},
		Maglev:       map[RevNatID][]BackendID{},
		SourceRanges: map[RevNatID][]netip.Prefix{},
	}
}

// Apply implements LBMap.
func (m *FakeLBMap) Apply(c *Changes) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return applyOrdered(m, c)
}

// Dump implements LBMap; pause is called once, after the read.
// IDLimits implements LBMap.
func (m *FakeLBMap) IDLimits() (backends, revnats uint32) {
	backends, revnats = m.BackendLimit, m.RevNatLimit
	if backends == 0 {
		backends = math.MaxUint32
	}
	if revnats == 0 {
		revnats = math.MaxUint32
	}
	return backends, revnats
}

func (m *FakeLBMap) Dump(pause func()) (*State, error) {
	if pause != nil {
		defer pause()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st := NewState()
	for k, v := range m.slots {
		addSlot(st, k.f, k.slot, v)
	}
	finishDump(st)
	for id, b := range m.backends {
		st.Backends[id] = b
	}
	for id, ap := range m.revnats {
		st.RevNats[id] = ap
	}
	for k := range m.affinity {
		st.Affinity[k] = true
	}
	return st, nil
}

// Entries returns how many services-map entries exist.
func (m *FakeLBMap) Entries() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.slots)
}

func (m *FakeLBMap) write() error {
	if m.FailAfter > 0 && m.Writes >= m.FailAfter {
		return ErrInjected
	}
	m.Writes++
	return nil
}

func (m *FakeLBMap) putBackends(bes []BackendEntry) error {
	limit, _ := m.IDLimits()
	for _, b := range bes {
		if err := m.write(); err != nil {
			return err
		}
		if uint32(b.ID) >= limit || b.ID == 0 {
			return fmt.Errorf("update backends: id %d outside the array: %w", b.ID, ErrMapFull)
		}
		m.backends[b.ID] = b.Backend
	}
	return nil
}

func (m *FakeLBMap) putRevNats(rns []RevNatEntry) error {
	_, limit := m.IDLimits()
	for _, rn := range rns {
		if err := m.write(); err != nil {
			return err
		}
		if uint32(rn.ID) >= limit || rn.ID == 0 {
			return fmt.Errorf("update reverse NATs: id %d outside the array: %w", rn.ID, ErrMapFull)
		}
		m.revnats[rn.ID] = rn.Addr
	}
	return nil
}

func (m *FakeLBMap) putAffinity(ms []AffinityMatch) error {
	for _, a := range ms {
		if err := m.write(); err != nil {
			return err
		}
		m.affinity[a] = true
	}
	return nil
}

func (m *FakeLBMap) deleteAffinity(ms []AffinityMatch) error {
	for _, a := range ms {
		if err := m.write(); err != nil {
			return err
		}
		delete(m.affinity, a)
	}
	return nil
}

func (m *FakeLBMap) putSlots(entries []slotEntry) error {
	for _, e := range entries {
		k := fakeSlotKey{e.f, e.slot}
		if _, ok := m.slots[k]; !ok && m.MaxSlots > 0 && len(m.slots) >= m.MaxSlots {
			return fmt.Errorf("update services: %w", ErrMapFull)
		}
		if err := m.write(); err != nil {
			return err
		}
		m.slots[k] = e.v
		m.check()
	}
	return nil
}

func (m *FakeLBMap) deleteSlots(entries []slotEntry) error {
	for _, e := range entries {
		if err := m.write(); err != nil {
			return err
		}
		delete(m.slots, fakeSlotKey{e.f, e.slot})
		m.check()
	}
	return nil
}

func (m *FakeLBMap) deleteBackendsAndRevNats(bes []BackendID, rns []RevNatID) error {
	for _, id := range bes {
		if err := m.write(); err != nil {
			return err
		}
		delete(m.backends, id)
		m.check()
	}
	for _, id := range rns {
		if err := m.write(); err != nil {
			return err
		}
		delete(m.revnats, id)
	}
	return nil
}

// check records a violation when some slot 0 promises a slot or backend
// that is not there: exactly what the BPF program would trip over.
func (m *FakeLBMap) check() {
	for k, v := range m.slots {
		if k.slot != 0 {
			continue
		}
		for s := 1; s <= int(v.Count); s++ {
			be, ok := m.slots[fakeSlotKey{k.f, s}]
			if !ok {
				m.Violations = append(m.Violations, fmt.Sprintf("%s: slot %d missing (count %d)", k.f, s, v.Count))
				continue
			}
			if _, ok := m.backends[BackendID(be.BackendId)]; !ok {
				m.Violations = append(m.Violations, fmt.Sprintf("%s: slot %d names missing backend %d", k.f, s, be.BackendId))
			}
		}
	}
}

func (m *FakeLBMap) putExtras(ups []ServiceUpdate) error {
	for i := range ups {
		s := &ups[i].Service
		if s.Flags&FlagSourceRanges != 0 {
			if err := m.write(); err != nil {
				return err
			}
			m.SourceRanges[s.RevNat] = s.SourceRanges
		}
		if s.Algorithm == AlgMaglev && len(s.Maglev) > 0 {
			if err := m.write(); err != nil {
				return err
			}
			m.Maglev[s.RevNat] = s.Maglev
		}
	}
	return nil
}

func (m *FakeLBMap) deleteExtras(ups []ServiceUpdate, gone []RevNatID) error {
	for i := range ups {
		s := &ups[i].Service
		if s.Flags&FlagSourceRanges == 0 {
			delete(m.SourceRanges, s.RevNat)
		}
		if s.Algorithm != AlgMaglev || len(s.Maglev) == 0 {
			delete(m.Maglev, s.RevNat)
		}
	}
	for _, id := range gone {
		delete(m.SourceRanges, id)
		delete(m.Maglev, id)
	}
	return nil
}
