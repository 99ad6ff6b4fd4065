package datapath

import (
	"fmt"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// dumpArray reads the entries of a BPF_F_MMAPABLE array whose value keep
// accepts, keyed by index, through a read-only mapping that is undone
// before it returns (its pages never count against the agent's memory).
// A syscall read of an array costs ~400 ns an entry, a walk of the
// mapping a few: at the default sizes the backends and reverse-NAT
// arrays hold 1.5M entries, most of them empty.
func dumpArray[V any](m *ebpf.Map, p *pauseEvery, keep func(*V) bool) ([]uint32, []V, error) {
	var zero V
	size := int(unsafe.Sizeof(zero))
	if m.Type() != ebpf.Array || int(m.ValueSize()) != size {
		return nil, nil, fmt.Errorf("dump %s: not an array of %d-byte values", mapName(m), size)
	}
	stride := (size + 7) &^ 7 // the kernel lays mmapable array values out 8-byte aligned
	n := int(m.MaxEntries())
	pg := unix.Getpagesize()
	b, err := unix.Mmap(m.FD(), 0, (n*stride+pg-1)/pg*pg, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		// A read-only handle (the CLI's pinned views) cannot be mapped
		// shared: read through the syscall instead.
		return dumpArraySlow(m, p, keep)
	}
	defer unix.Munmap(b)
	var (
		keys []uint32
		vals []V
	)
	for i := range n {
		// The values are laid out as the C structs the bpf2go types
		// mirror (the size check above), aligned for any of their fields.
		v := (*V)(unsafe.Pointer(&b[i*stride]))
		if keep(v) {
			keys, vals = append(keys, uint32(i)), append(vals, *v)
		}
		if i%batchChunk == batchChunk-1 {
			p.tick(batchChunk)
		}
	}
	return keys, vals, nil
}

func dumpArraySlow[V any](m *ebpf.Map, p *pauseEvery, keep func(*V) bool) ([]uint32, []V, error) {
	ks, vs, err := dumpAll[uint32, V](m, p)
	if err != nil {
		return nil, nil, err
	}
	var (
		keys []uint32
		vals []V
	)
	for i := range ks {
		if keep(&vs[i]) {
			keys, vals = append(keys, ks[i]), append(vals, vs[i])
		}
	}
	return keys, vals, nil
}
