package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
)

// PinnedHost is a read-only view of the per-packet maps and links, for
// the CLI (Debian's bpftool cannot list TCX links).
type PinnedHost struct {
	ct, nat, stats *ebpf.Map
	bpffs          string
}

// OpenPinnedHost opens the pinned CT, SNAT and counter maps read-only.
// The CT and SNAT maps exist once the agent has loaded the per-packet
// programs; without them nothing is tracked.
func OpenPinnedHost(bpffs string) (*PinnedHost, error) {
	p := &PinnedHost{bpffs: bpffs}
	for _, m := range []struct {
		name     string
		to       **ebpf.Map
		optional bool
	}{{"hl_ct", &p.ct, true}, {"hl_nat", &p.nat, true}, {"hl_stats", &p.stats, false}} {
		h, err := ebpf.LoadPinnedMap(filepath.Join(bpffs, m.name), &ebpf.LoadPinOptions{ReadOnly: true})
		if err != nil {
			if m.optional && errors.Is(err, os.ErrNotExist) {
				continue
			}
			p.Close()
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("open %s: %w (is an agent running with --bpffs %s?)", m.name, ErrNotLoaded, bpffs)
			}
			return nil, fmt.Errorf("open pinned map %s: %w", m.name, err)
		}
		*m.to = h
	}
	return p, nil
}

// Close releases the handles.
func (p *PinnedHost) Close() error {
	var errs []error
	for _, m := range []*ebpf.Map{p.ct, p.nat, p.stats} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	return errors.Join(errs...)
}

// Stats sums the per-CPU packet counters.
func (p *PinnedHost) Stats() (map[Stat]uint64, error) { return readStats(p.stats) }

// Conntrack lists the CT and SNAT entries.
func (p *PinnedHost) Conntrack() ([]CTEntry, error) {
	if p.ct == nil || p.nat == nil {
		return nil, nil
	}
	return readConntrack(p.ct, p.nat)
}

// Devices lists the node devices and pod veths with programs attached.
func (p *PinnedHost) Devices() (devices, pods []string, err error) {
	if devices, err = AttachedDevices(p.bpffs); err != nil {
		return nil, nil, err
	}
	pods, err = AttachedPods(p.bpffs)
	return devices, pods, err
}
