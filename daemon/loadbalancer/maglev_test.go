package loadbalancer

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/hivelet/hivelet/datapath"
)

func maglevBackends(n int) []datapath.Backend {
	out := make([]datapath.Backend, n)
	for i := range out {
		out[i] = datapath.Backend{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i / 256), byte(i % 256)}), 8080), Proto: datapath.TCP}
	}
	return out
}

func TestMaglevBalance(t *testing.T) {
	const m = 16381
	for _, n := range []int{1, 3, 10, 100} {
		table := MaglevTable(maglevBackends(n), m)
		owned := make([]int, n)
		for _, i := range table {
			owned[i]++
		}
		for i, c := range owned {
			if c < m/n-1 || c > m/n+1 {
				t.Errorf("%d backends: backend %d owns %d slots, want %d±1", n, i, c, m/n)
			}
		}
	}
}

// Removing one of N backends moves the flows of its own slots and almost
// none of the others': at most ~1/N of all flows.
func TestMaglevRemovingOneBackendMovesAboutOneNth(t *testing.T) {
	const m = 16381
	for _, n := range []int{3, 5, 10, 50} {
		bes := maglevBackends(n)
		before := MaglevTable(bes, m)
		for removed := range n {
			rest := append(append([]datapath.Backend{}, bes[:removed]...), bes[removed+1:]...)
			after := MaglevTable(rest, m)
			moved := 0
			for slot := range m {
				if bes[before[slot]] != rest[after[slot]] {
					moved++
				}
			}
			frac := float64(moved) / m
			// The removed backend's own share is 1/N; Maglev's guarantee
			// is near-minimal disruption, so allow a small slack on top.
			if limit := 1.0/float64(n) + 0.02; frac > limit {
				t.Errorf("%d backends, removing #%d moved %.3f of flows, want <= %.3f", n, removed, frac, limit)
			}
		}
	}
}

func TestMaglevSameBackendsSameTable(t *testing.T) {
	a := MaglevTable(maglevBackends(7), 251)
	b := MaglevTable(maglevBackends(7), 251)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Error("two nodes computing the table from the same backends disagree")
	}
}

func BenchmarkMaglevTable(b *testing.B) {
	bes := maglevBackends(10)
	for b.Loop() {
		MaglevTable(bes, datapath.DefaultMaglevTableSize)
	}
}
