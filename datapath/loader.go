package datapath

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// MapSizes are the max_entries of the maps the agent creates. Changing a
// size of an existing pinned map needs `hivelet agent --cleanup` first.
type MapSizes struct {
	Services   uint32 // entries in each services map: frontends × (backends + 1)
	Backends   uint32
	RevNat     uint32
	SockRevNat uint32 // LRU, per connected socket and backend
	Affinity   uint32 // LRU, per client namespace and service with session affinity
}

// DefaultMapSizes hold 100k frontends with 3 backends each, plus headroom.
var DefaultMapSizes = MapSizes{
	Services:   1 << 19,
	Backends:   1 << 19,
	RevNat:     1 << 18,
	SockRevNat: 1 << 18,
	Affinity:   1 << 16,
}

// Config says where the datapath keeps its pins.
type Config struct {
	BPFFSDir string
	Sizes    MapSizes
}

// Datapath is the loaded socket LB object with its maps pinned.
type Datapath struct {
	cfg  Config
	objs sockObjects
}

// Load loads the socket LB programs and creates or re-opens the pinned
// maps under cfg.BPFFSDir. Existing maps keep their content: a restart
// never flushes them.
func Load(cfg Config) (*Datapath, error) {
	if err := EnsureBPFFS(cfg.BPFFSDir); err != nil {
		return nil, err
	}
	spec, err := loadSock()
	if err != nil {
		return nil, fmt.Errorf("load socket LB spec: %w", err)
	}
	sizes := map[string]uint32{
		sockMapHlLb4Svc: cfg.Sizes.Services, sockMapHlLb6Svc: cfg.Sizes.Services,
		sockMapHlLb4Be: cfg.Sizes.Backends, sockMapHlLb6Be: cfg.Sizes.Backends,
		sockMapHlLb4Rnat: cfg.Sizes.RevNat, sockMapHlLb6Rnat: cfg.Sizes.RevNat,
		sockMapHlSkRnat4: cfg.Sizes.SockRevNat, sockMapHlSkRnat6: cfg.Sizes.SockRevNat,
		sockMapHlLbAff: cfg.Sizes.Affinity, sockMapHlLbAffm: cfg.Sizes.Backends,
	}
	for name, size := range sizes {
		if size > 0 {
			spec.Maps[name].MaxEntries = size
		}
	}
	d := &Datapath{cfg: cfg}
	opts := &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: cfg.BPFFSDir}}
	if err := spec.LoadAndAssign(&d.objs, opts); err != nil {
		if errors.Is(err, ebpf.ErrMapIncompatible) {
			return nil, fmt.Errorf("load socket LB: %w (a pinned map in %s has another size or layout; keep the old --bpf-lb-*-max values or run `hivelet agent --cleanup` first)", err, cfg.BPFFSDir)
		}
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			return nil, fmt.Errorf("load socket LB: %+v", verr)
		}
		return nil, fmt.Errorf("load socket LB: %w", err)
	}
	return d, nil
}

// LBMap returns the writer for the load-balancing maps.
func (d *Datapath) LBMap() LBMap { return newBPFLBMap(&d.objs.sockMaps) }

// Close releases the agent's handles; pinned maps and links stay.
func (d *Datapath) Close() error { return d.objs.Close() }
