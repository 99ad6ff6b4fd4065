package datapath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

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
	CT         uint32 // LRU, two entries per flow from outside to a local backend
	NAT        uint32 // LRU, one entry per SNATed flow to a remote backend
	SrcRanges  uint32 // loadBalancerSourceRanges prefixes, all services
	Maglev     uint32 // services with a Maglev table
}

// DefaultMapSizes hold 100k frontends with 3 backends each, plus headroom.
var DefaultMapSizes = MapSizes{
	Services:   1 << 19,
	Backends:   1 << 19,
	RevNat:     1 << 18,
	SockRevNat: 1 << 18,
	Affinity:   1 << 16,
	CT:         1 << 18,
	NAT:        1 << 17,
	SrcRanges:  1 << 14,
	Maglev:     1 << 14,
}

// DefaultMaglevTableSize is the prime number of slots of each Maglev
// table (as Cilium's default): with N backends, each owns about M/N slots.
const DefaultMaglevTableSize = 16381

// Config says where the datapath keeps its pins.
type Config struct {
	BPFFSDir string
	Sizes    MapSizes
	// MaglevTableSize is the slot count of Maglev tables, a prime;
	// DefaultMaglevTableSize when 0.
	MaglevTableSize uint32
}

func (c Config) maglevSize() uint32 {
	if c.MaglevTableSize == 0 {
		return DefaultMaglevTableSize
	}
	return c.MaglevTableSize
}

// Datapath is the loaded socket LB and TC objects with their maps pinned.
type Datapath struct {
	cfg  Config
	objs sockLB

	// lbUnwritten is set while the LB maps are known to be empty: this
	// Load created them and no writer has applied anything since.
	lbUnwritten atomic.Bool

	ppOnce sync.Once
	pp     perPacketMaps
	ppErr  error

	tcOnce sync.Once
	tcErr  error
	host   hostObjects
	pod    podObjects
}

// Load loads the socket LB programs and creates or re-opens the pinned
// maps under cfg.BPFFSDir. Existing maps keep their content: a restart
// never flushes them. The per-packet programs load when first needed.
func Load(cfg Config) (*Datapath, error) {
	if err := EnsureBPFFS(cfg.BPFFSDir); err != nil {
		return nil, err
	}
	d := &Datapath{cfg: cfg}
	created := !anyPinned(cfg.BPFFSDir, lbMapNames...)
	if err := loadSpec("socket LB", loadSock, &d.objs, cfg); err != nil {
		return nil, err
	}
	d.lbUnwritten.Store(created)
	if err := d.initHostConfig(); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// sockLB is what the socket LB loads: its programs and the maps they and
// the agent use. The maps only the per-packet programs use are left to
// them (perPacketMaps).
type sockLB struct {
	sockPrograms
	sockLBMaps
}

type sockLBMaps struct {
	HlHostCfg  *ebpf.Map `ebpf:"hl_host_cfg"`
	HlLb4Be    *ebpf.Map `ebpf:"hl_lb4_be"`
	HlLb4Rnat  *ebpf.Map `ebpf:"hl_lb4_rnat"`
	HlLb4Svc   *ebpf.Map `ebpf:"hl_lb4_svc"`
	HlLb6Be    *ebpf.Map `ebpf:"hl_lb6_be"`
	HlLb6Rnat  *ebpf.Map `ebpf:"hl_lb6_rnat"`
	HlLb6Svc   *ebpf.Map `ebpf:"hl_lb6_svc"`
	HlLbAff    *ebpf.Map `ebpf:"hl_lb_aff"`
	HlLbAffm   *ebpf.Map `ebpf:"hl_lb_affm"`
	HlLbMaglev *ebpf.Map `ebpf:"hl_lb_maglev"`
	HlLbSrcr   *ebpf.Map `ebpf:"hl_lb_srcr"`
	HlSkRnat4  *ebpf.Map `ebpf:"hl_sk_rnat4"`
	HlSkRnat6  *ebpf.Map `ebpf:"hl_sk_rnat6"`
	HlStats    *ebpf.Map `ebpf:"hl_stats"`
}

func (o *sockLB) Close() error {
	m := &o.sockLBMaps
	return _SockClose(&o.sockPrograms, m.HlHostCfg, m.HlLb4Be, m.HlLb4Rnat, m.HlLb4Svc, m.HlLb6Be, m.HlLb6Rnat, m.HlLb6Svc,
		m.HlLbAff, m.HlLbAffm, m.HlLbMaglev, m.HlLbSrcr, m.HlSkRnat4, m.HlSkRnat6, m.HlStats)
}

// perPacketMaps are the conntrack, SNAT and external-affinity LRU maps.
// LRU maps are preallocated: at the default sizes these ~450k entries are
// ~50 ms of CPU to create, which a node that serves no device and no pod
// veth never needs.
type perPacketMaps struct {
	ct, nat, affx *ebpf.Map
}

var perPacketMapNames = []string{sockMapHlCt, sockMapHlNat, sockMapHlLbAffx}

// perPacket creates (or opens the pins of) the per-packet maps, once.
func (d *Datapath) perPacket() (perPacketMaps, error) {
	d.ppOnce.Do(func() {
		spec, err := loadHost()
		if err != nil {
			d.ppErr = fmt.Errorf("load TC datapath spec: %w", err)
			return
		}
		sizeMaps(spec, d.cfg)
		var ms [3]*ebpf.Map
		for i, name := range perPacketMapNames {
			if ms[i], err = ebpf.NewMapWithOptions(spec.Maps[name], ebpf.MapOptions{PinPath: d.cfg.BPFFSDir}); err != nil {
				for _, m := range ms[:i] {
					m.Close()
				}
				d.ppErr = fmt.Errorf("create map %s: %w", name, incompatibleHint(err, d.cfg))
				return
			}
		}
		d.pp = perPacketMaps{ct: ms[0], nat: ms[1], affx: ms[2]}
	})
	return d.pp, d.ppErr
}

func (p perPacketMaps) Close() error {
	if p.ct == nil {
		return nil
	}
	return _SockClose(p.ct, p.nat, p.affx)
}

// loadTC loads the per-packet objects the first time one is needed: a
// node that serves no device and no pod veth never pays their verifier
// time, which is most of a cold start. Every map they share is pinned by
// then (the socket LB's and perPacket's), so the two only load programs,
// side by side.
func (d *Datapath) loadTC() error {
	d.tcOnce.Do(func() {
		if _, err := d.perPacket(); err != nil {
			d.tcErr = err
			return
		}
		var wg sync.WaitGroup
		var hostErr, podErr error
		wg.Go(func() { hostErr = loadSpec("TC datapath", loadHost, &d.host, d.cfg) })
		wg.Go(func() { podErr = loadSpec("pod datapath", loadPod, &d.pod, d.cfg) })
		wg.Wait()
		d.tcErr = errors.Join(hostErr, podErr)
	})
	return d.tcErr
}

func loadSpec(what string, spec func() (*ebpf.CollectionSpec, error), objs any, cfg Config) error {
	s, err := spec()
	if err != nil {
		return fmt.Errorf("load %s spec: %w", what, err)
	}
	return loadObject(what, s, objs, cfg)
}

// loadObject sizes the maps of spec as cfg says and loads it into objs,
// re-opening maps already pinned: objects share every map by name.
func loadObject(what string, spec *ebpf.CollectionSpec, objs any, cfg Config) error {
	sizeMaps(spec, cfg)
	opts := &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: cfg.BPFFSDir}}
	if err := spec.LoadAndAssign(objs, opts); err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			return fmt.Errorf("load %s: %+v", what, verr)
		}
		return fmt.Errorf("load %s: %w", what, incompatibleHint(err, cfg))
	}
	return nil
}

// incompatibleHint adds the remedy to a pinned map's size or layout
// mismatch.
func incompatibleHint(err error, cfg Config) error {
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		return fmt.Errorf("%w (a pinned map in %s has another size or layout; keep the old --bpf-*-max values or run `hivelet agent --cleanup` first)", err, cfg.BPFFSDir)
	}
	return err
}

// sizeMaps sets the max_entries of spec's maps as cfg says.
func sizeMaps(spec *ebpf.CollectionSpec, cfg Config) {
	sizes := map[string]uint32{
		"hl_lb4_svc": cfg.Sizes.Services, "hl_lb6_svc": cfg.Sizes.Services,
		"hl_lb4_be": cfg.Sizes.Backends, "hl_lb6_be": cfg.Sizes.Backends,
		"hl_lb4_rnat": cfg.Sizes.RevNat, "hl_lb6_rnat": cfg.Sizes.RevNat,
		"hl_sk_rnat4": cfg.Sizes.SockRevNat, "hl_sk_rnat6": cfg.Sizes.SockRevNat,
		"hl_lb_aff": cfg.Sizes.Affinity, "hl_lb_affm": cfg.Sizes.Backends, "hl_lb_affx": cfg.Sizes.Affinity,
		"hl_ct": cfg.Sizes.CT, "hl_nat": cfg.Sizes.NAT, "hl_lb_srcr": cfg.Sizes.SrcRanges,
		"hl_lb_maglev": cfg.Sizes.Maglev,
	}
	for name, size := range sizes {
		if m := spec.Maps[name]; m != nil && size > 0 {
			m.MaxEntries = size
		}
	}
	if m := spec.Maps["hl_lb_maglev"]; m != nil && m.InnerMap != nil {
		m.InnerMap.MaxEntries = cfg.maglevSize()
	}
}

// LBMap returns the writer for the load-balancing maps.
func (d *Datapath) LBMap() LBMap {
	m := newBPFLBMap(&d.objs.sockLBMaps)
	m.unwritten = &d.lbUnwritten
	return m
}

// lbMapNames are the maps an LBMap reads and writes.
var lbMapNames = append([]string{sockMapHlLbSrcr, sockMapHlLbMaglev}, lbViewMaps...)

// anyPinned reports whether dir holds a pin of any of the maps named.
func anyPinned(dir string, names ...string) bool {
	for _, n := range names {
		if _, err := os.Lstat(filepath.Join(dir, n)); err == nil || !errors.Is(err, fs.ErrNotExist) {
			return true
		}
	}
	return false
}

// Close releases the agent's handles; pinned maps and links stay.
func (d *Datapath) Close() error {
	return errors.Join(d.objs.Close(), d.pp.Close(), d.host.Close(), d.pod.Close())
}
