package datapath

import (
	"path/filepath"

	"github.com/cilium/ebpf"
)

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

// ReadOnlyLBMap opens the pinned LB maps read-only, all of them (the
// arrays then cannot be mapped: Dump reads them through the syscall).
func ReadOnlyLBMap(bpffs string) (LBMap, func(), error) {
	var ms []*ebpf.Map
	closeAll := func() {
		for _, m := range ms {
			m.Close()
		}
	}
	for _, n := range lbViewMaps {
		m, err := ebpf.LoadPinnedMap(filepath.Join(bpffs, n), &ebpf.LoadPinOptions{ReadOnly: true})
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		ms = append(ms, m)
	}
	return lbView(ms), closeAll, nil
}
