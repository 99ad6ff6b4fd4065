package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"

	"github.com/hivelet/hivelet/daemon/ctgc"
	"github.com/hivelet/hivelet/daemon/devices"
	"github.com/hivelet/hivelet/daemon/logfields"
	"github.com/hivelet/hivelet/daemon/metrics"
	"github.com/hivelet/hivelet/datapath"
)

// DevicesAuto selects the devices carrying the default routes and the
// node's addresses.
const DevicesAuto = devices.Auto

func registerPacketCounters(m *metrics.Metrics, dp *datapath.Datapath) {
	m.RegisterPacketCounters(func() (map[string]uint64, error) {
		st, err := dp.Stats()
		out := make(map[string]uint64, len(st))
		for k, v := range st {
			out[k.String()] = v
		}
		return out, err
	})
}

// startHostDatapath attaches the per-packet programs to the node's
// devices, tells them the SNAT addresses and starts the conntrack GC.
func startHostDatapath(ctx context.Context, cfg Config, dp *datapath.Datapath, m *metrics.Metrics, log *slog.Logger) error {
	devs, err := devices.Resolve(cfg.Devices, cfg.NodeIPs)
	if err != nil {
		return err
	}
	stale, err := datapath.AttachedDevices(cfg.BPFFSDir)
	if err != nil {
		return err
	}
	for _, d := range stale {
		if !slices.Contains(devs, d) {
			if err := datapath.DetachDevice(cfg.BPFFSDir, d); err != nil {
				return err
			}
			log.Info("Detached from a device no longer in --devices", logfields.Device, d)
		}
	}
	if len(devs) == 0 {
		log.Info("No devices: NodePorts, external IPs and load-balancer IPs serve clients on this node only (set --devices)")
		return nil
	}
	v4, v6 := devices.SNATAddrs(cfg.NodeIPs, devs)
	if err := dp.SetHostConfig(datapath.HostConfig{SNAT4: v4, SNAT6: v6, NATPortMin: cfg.NATPortMin, NATPortMax: cfg.NATPortMax}); err != nil {
		return err
	}
	for _, d := range devs {
		if err := dp.AttachDevice(d); err != nil {
			return err
		}
	}
	log.Info("TC datapath attached", logfields.Devices, strings.Join(devs, ","), logfields.SNAT4, addrOrNone(v4), logfields.SNAT6, addrOrNone(v6))
	m.MapCapacity.WithLabelValues("ct").Set(float64(cfg.MapSizes.CT))
	m.MapCapacity.WithLabelValues("nat").Set(float64(cfg.MapSizes.NAT))
	go ctgc.Run(ctx, dp, m, log)
	return nil
}

func addrOrNone(a netip.Addr) string {
	if !a.IsValid() {
		return "none"
	}
	return a.String()
}
