// Package eviction holds kubelet-lite's eviction thresholds: the upstream
// kubelet's signals (memory.available, nodefs.available, ...), parsed from
// --eviction-hard and evictionHard as upstream writes them, and what they
// take from the node's allocatable.
package eviction

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Signal is what a threshold watches, upstream's names.
type Signal string

const (
	MemoryAvailable   Signal = "memory.available"
	NodeFSAvailable   Signal = "nodefs.available"
	NodeFSInodesFree  Signal = "nodefs.inodesFree"
	ImageFSAvailable  Signal = "imagefs.available"
	ImageFSInodesFree Signal = "imagefs.inodesFree"
	PIDAvailable      Signal = "pid.available"
)

// DefaultHard is the upstream kubelet's --eviction-hard on Linux.
const DefaultHard = "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%,imagefs.inodesFree<5%"

// signals are those kubelet-lite measures; the others upstream knows are
// refused by name rather than ignored.
var signals = []Signal{MemoryAvailable, NodeFSAvailable, NodeFSInodesFree, ImageFSAvailable, ImageFSInodesFree, PIDAvailable}

// Threshold is "signal below value": an absolute quantity, or a fraction
// of the signal's capacity.
type Threshold struct {
	Signal   Signal
	Quantity *resource.Quantity
	Fraction float64 // when Quantity is nil: 0.1 for "10%"
}

// Value is the threshold in the signal's unit for a capacity (bytes,
// inodes or PIDs).
func (t Threshold) Value(capacity int64) int64 {
	if t.Quantity != nil {
		return t.Quantity.Value()
	}
	return int64(t.Fraction * float64(capacity))
}

// String writes the threshold as the flag takes it.
func (t Threshold) String() string {
	if t.Quantity != nil {
		return string(t.Signal) + "<" + t.Quantity.String()
	}
	return string(t.Signal) + "<" + strconv.FormatFloat(t.Fraction*100, 'f', -1, 64) + "%"
}

// ParseFlag reads --eviction-hard's form: "memory.available<100Mi,nodefs.available<10%".
func ParseFlag(s string) ([]Threshold, error) {
	m := map[string]string{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		sig, val, ok := strings.Cut(part, "<")
		if !ok {
			return nil, fmt.Errorf("eviction threshold %q: want signal<value, such as memory.available<100Mi (only < is supported)", part)
		}
		m[strings.TrimSpace(sig)] = strings.TrimSpace(val)
	}
	return ParseMap(m)
}

// ParseMap reads KubeletConfiguration's form: {memory.available: 100Mi}.
// Signals come out in a fixed order.
func ParseMap(m map[string]string) ([]Threshold, error) {
	var out []Threshold
	for _, sig := range slices.Sorted(maps.Keys(m)) {
		t, err := parseOne(Signal(sig), m[sig])
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func parseOne(sig Signal, val string) (Threshold, error) {
	if !slices.Contains(signals, sig) {
		return Threshold{}, fmt.Errorf("eviction threshold %s: unknown or unsupported signal (one of %v)", sig, signals)
	}
	if pct, ok := strings.CutSuffix(val, "%"); ok {
		f, err := strconv.ParseFloat(pct, 64)
		if err != nil || f < 0 || f > 100 {
			return Threshold{}, fmt.Errorf("eviction threshold %s: %q is not a percentage from 0%% to 100%%", sig, val)
		}
		return Threshold{Signal: sig, Fraction: f / 100}, nil
	}
	q, err := resource.ParseQuantity(val)
	if err != nil || q.Sign() < 0 {
		return Threshold{}, fmt.Errorf("eviction threshold %s: %q is not a non-negative quantity (or a percentage)", sig, val)
	}
	return Threshold{Signal: sig, Quantity: &q}, nil
}

// Find returns the threshold on sig, if any.
func Find(ts []Threshold, sig Signal) (Threshold, bool) {
	for _, t := range ts {
		if t.Signal == sig {
			return t, true
		}
	}
	return Threshold{}, false
}
