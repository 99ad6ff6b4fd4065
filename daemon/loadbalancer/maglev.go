package loadbalancer

import (
	"hash/fnv"

	"github.com/hivelet/hivelet/datapath"
)

// MaglevTable fills a lookup table of m slots (m prime) with indexes into
// backends, by the permutation scheme of the Maglev paper (Eisenbud et
// al., NSDI 2016): each backend gets an offset and a step derived from its
// address, and the backends take turns claiming their next free slot. Every
// backend owns m/len(backends) slots, give or take one, and removing a
// backend moves little more than its own slots. Nodes compute the same
// table from the same backends, so a flow picks the same backend on any
// node. Returns nil without backends.
func MaglevTable(backends []datapath.Backend, m int) []int {
	n := len(backends)
	if n == 0 || m < 2 {
		return nil
	}
	offset := make([]int, n)
	skip := make([]int, n)
	for i, b := range backends {
		name := b.Addr.String() + "/" + b.Proto.String()
		offset[i] = int(hash64(name, 0xfeedface) % uint64(m))
		skip[i] = int(hash64(name, 0xdecafbad)%uint64(m-1)) + 1
	}
	table := make([]int, m)
	for i := range table {
		table[i] = -1
	}
	next := make([]int, n)
	for filled := 0; ; {
		for i := range n {
			c := (offset[i] + next[i]*skip[i]) % m
			for table[c] >= 0 {
				next[i]++
				c = (offset[i] + next[i]*skip[i]) % m
			}
			table[c] = i
			next[i]++
			if filled++; filled == m {
				return table
			}
		}
	}
}

func hash64(s string, seed uint64) uint64 {
	h := fnv.New64a()
	var b [8]byte
	for i := range b {
		b[i] = byte(seed >> (8 * i))
	}
	h.Write(b[:])
	h.Write([]byte(s))
	return h.Sum64()
}
