package datapath

// slotEntry is one services-map entry: slot 0 of a frontend or one of its
// backend slots.
type slotEntry struct {
	f    Frontend
	slot int
	v    sockLbService
}

// lbWriter is what applyOrdered needs from a map implementation; the
// kernel maps and the fake share the ordering through it.
type lbWriter interface {
	putBackends([]BackendEntry) error
	putRevNats([]RevNatEntry) error
	putAffinity([]AffinityMatch) error
	deleteAffinity([]AffinityMatch) error
	putSlots([]slotEntry) error
	deleteSlots([]slotEntry) error
	deleteBackendsAndRevNats([]BackendID, []RevNatID) error
	// putExtras writes what the per-packet path reads besides the slots:
	// Maglev tables and source ranges of the updated services.
	putExtras([]ServiceUpdate) error
	// deleteExtras drops the tables and ranges of removed rev-NAT ids and
	// of updated services that no longer use them.
	deleteExtras(ups []ServiceUpdate, gone []RevNatID) error
}

func masterValue(s *Service) sockLbService {
	v := sockLbService{RevNatIndex: uint32(s.RevNat), Count: uint16(len(s.Backends)), Flags: uint8(s.Flags &^ FlagAffinity), Algorithm: uint8(s.Algorithm)}
	if s.AffinityTimeout > 0 {
		v.Flags |= uint8(FlagAffinity)
		v.BackendId = s.AffinityTimeout
	}
	return v
}

// applyOrdered writes c so that a concurrent reader always finds what slot 0
// promises: backends and reverse NAT before the slots naming them, backend
// slots before the slot 0 that counts them, slot 0 shrunk or removed before
// the slots it no longer counts, and backends removed last.
func applyOrdered(w lbWriter, c *Changes) error {
	if err := w.putBackends(c.UpsertBackends); err != nil {
		return err
	}
	if err := w.putRevNats(c.UpsertRevNats); err != nil {
		return err
	}
	if err := w.putAffinity(c.UpsertAffinity); err != nil {
		return err
	}
	// Source ranges before the slot 0 that enables them; Maglev tables
	// before the slot 0 that names the algorithm.
	if err := w.putExtras(c.UpsertServices); err != nil {
		return err
	}
	nSlots, nDel := 0, len(c.DeleteServices)
	for i := range c.UpsertServices {
		nSlots += len(c.UpsertServices[i].Service.Backends)
		nDel += max(0, c.UpsertServices[i].PrevSlots-len(c.UpsertServices[i].Service.Backends))
	}
	for _, d := range c.DeleteServices {
		nDel += d.PrevSlots
	}
	slots := make([]slotEntry, 0, nSlots)
	masters := make([]slotEntry, 0, len(c.UpsertServices))
	delMasters := make([]slotEntry, 0, len(c.DeleteServices))
	delSlots := make([]slotEntry, 0, nDel)
	for i := range c.UpsertServices {
		u := &c.UpsertServices[i]
		s := &u.Service
		for j, id := range s.Backends {
			slots = append(slots, slotEntry{s.Frontend, j + 1, sockLbService{BackendId: uint32(id)}})
		}
		masters = append(masters, slotEntry{s.Frontend, 0, masterValue(s)})
		for slot := len(s.Backends) + 1; slot <= u.PrevSlots; slot++ {
			delSlots = append(delSlots, slotEntry{f: s.Frontend, slot: slot})
		}
	}
	for _, d := range c.DeleteServices {
		delMasters = append(delMasters, slotEntry{f: d.Frontend})
		for slot := 1; slot <= d.PrevSlots; slot++ {
			delSlots = append(delSlots, slotEntry{f: d.Frontend, slot: slot})
		}
	}
	if err := w.putSlots(slots); err != nil {
		return err
	}
	if err := w.putSlots(masters); err != nil {
		return err
	}
	if err := w.deleteSlots(delMasters); err != nil {
		return err
	}
	if err := w.deleteSlots(delSlots); err != nil {
		return err
	}
	if err := w.deleteAffinity(c.DeleteAffinity); err != nil {
		return err
	}
	if err := w.deleteExtras(c.UpsertServices, c.DeleteRevNats); err != nil {
		return err
	}
	return w.deleteBackendsAndRevNats(c.DeleteBackends, c.DeleteRevNats)
}
