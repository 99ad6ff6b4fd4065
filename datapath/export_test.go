package datapath

// What the kernel maps hold, for the external tests.

// MaglevTableIDs reads the rev-NAT ids with a Maglev table from the
// kernel, as a writer that never saw them would.
func MaglevTableIDs(w LBMap) (map[uint32]struct{}, error) {
	return (&bpfLBMap{maglev: w.(*bpfLBMap).maglev}).maglevTables()
}

// SourceRangeLens reads the prefix lengths of the source ranges of each
// rev-NAT id.
func SourceRangeLens(w LBMap) (map[uint32][]uint32, error) {
	got := map[uint32][]uint32{}
	var k sockLbSrcrangeKey
	var v uint8
	it := w.(*bpfLBMap).srcr.Iterate()
	for it.Next(&k, &v) {
		got[k.RevNatId] = append(got[k.RevNatId], k.Prefixlen)
	}
	return got, it.Err()
}

// BPFFSDirOf is where dp keeps its pins.
func BPFFSDirOf(dp *Datapath) string { return dp.cfg.BPFFSDir }
