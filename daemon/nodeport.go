package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/hivelet/hivelet/daemon/logfields"
	"github.com/hivelet/hivelet/daemon/metrics"
	"github.com/hivelet/hivelet/datapath"
)

// DevicesAuto selects the devices carrying the default routes and the
// node's addresses.
const DevicesAuto = "auto"

// resolveDevices turns --devices into device names: "auto", "" / "none"
// (no TC datapath), or a comma-separated list.
func resolveDevices(spec string, nodeIPs []netip.Addr) ([]string, error) {
	switch spec {
	case "", "none":
		return nil, nil
	case DevicesAuto:
		return detectDevices(nodeIPs)
	}
	var out []string
	for _, d := range strings.Split(spec, ",") {
		if d = strings.TrimSpace(d); d != "" {
			if _, err := netlink.LinkByName(d); err != nil {
				return nil, fmt.Errorf("--devices %s: %w (list devices with `ip link`)", d, err)
			}
			out = append(out, d)
		}
	}
	return out, nil
}

// detectDevices finds the devices of the default routes and of the node
// addresses: where traffic from outside the node arrives.
func detectDevices(nodeIPs []netip.Addr) ([]string, error) {
	idx := map[int]bool{}
	routes, err := netlink.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("detect devices: list routes: %w", err)
	}
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.IP.IsUnspecified() && isZeroMask(r.Dst.Mask)) && r.LinkIndex > 0 {
			idx[r.LinkIndex] = true
		}
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("detect devices: list addresses: %w", err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && slices.Contains(nodeIPs, ip.Unmap()) {
			idx[a.LinkIndex] = true
		}
	}
	var out []string
	for i := range idx {
		l, err := netlink.LinkByIndex(i)
		if err != nil {
			continue
		}
		name := l.Attrs().Name
		// netlink reports Go's net.Flags, not the kernel's IFF_ bits (where
		// loopback is 1<<3; here that bit is point-to-point, which a
		// tunnel or PPP uplink carrying the default route has).
		if l.Attrs().Flags&net.FlagLoopback != 0 || strings.HasPrefix(name, "hl") {
			continue // loopback and pod veths are not external devices
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out, nil
}

func isZeroMask(m []byte) bool {
	for _, b := range m {
		if b != 0 {
			return false
		}
	}
	return true
}

// snatAddrs picks the node addresses flows to remote backends are SNATed
// to: the first node IP of each family, else the first global address of
// the devices.
func snatAddrs(nodeIPs []netip.Addr, devices []string) (v4, v6 netip.Addr) {
	pick := func(a netip.Addr) {
		a = a.Unmap()
		if a.Is4() && !v4.IsValid() {
			v4 = a
		}
		if a.Is6() && !v6.IsValid() && !a.IsLinkLocalUnicast() {
			v6 = a
		}
	}
	for _, a := range nodeIPs {
		pick(a)
	}
	for _, d := range devices {
		l, err := netlink.LinkByName(d)
		if err != nil {
			continue
		}
		addrs, _ := netlink.AddrList(l, netlink.FAMILY_ALL)
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.IsGlobalUnicast() {
				pick(ip)
			}
		}
	}
	return v4, v6
}

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
	devices, err := resolveDevices(cfg.Devices, cfg.NodeIPs)
	if err != nil {
		return err
	}
	stale, err := datapath.AttachedDevices(cfg.BPFFSDir)
	if err != nil {
		return err
	}
	for _, d := range stale {
		if !slices.Contains(devices, d) {
			if err := datapath.DetachDevice(cfg.BPFFSDir, d); err != nil {
				return err
			}
			log.Info("Detached from a device no longer in --devices", logfields.Device, d)
		}
	}
	if len(devices) == 0 {
		log.Info("No devices: NodePorts, external IPs and load-balancer IPs serve clients on this node only (set --devices)")
		return nil
	}
	v4, v6 := snatAddrs(cfg.NodeIPs, devices)
	if err := dp.SetHostConfig(datapath.HostConfig{SNAT4: v4, SNAT6: v6, NATPortMin: cfg.NATPortMin, NATPortMax: cfg.NATPortMax}); err != nil {
		return err
	}
	for _, d := range devices {
		if err := dp.AttachDevice(d); err != nil {
			return err
		}
	}
	log.Info("TC datapath attached", logfields.Devices, strings.Join(devices, ","), logfields.SNAT4, addrOrNone(v4), logfields.SNAT6, addrOrNone(v6))
	m.MapCapacity.WithLabelValues("ct").Set(float64(cfg.MapSizes.CT))
	m.MapCapacity.WithLabelValues("nat").Set(float64(cfg.MapSizes.NAT))
	go conntrackGC(ctx, dp, m, log)
	return nil
}

// GC interval bounds: expired entries cost nothing to the programs (they
// are ignored), only LRU room, so collecting rarely is fine unless churn
// is high.
const (
	gcMinInterval   = 5 * time.Second
	gcMaxInterval   = 5 * time.Minute
	gcStartInterval = 30 * time.Second
)

// nextGCInterval adapts the interval to churn, as Cilium does: many
// expired entries or a nearly full map mean sooner, few mean later.
func nextGCInterval(prev time.Duration, st datapath.CTGCStats) time.Duration {
	total := st.CT + st.NAT + st.Deleted
	full := float64(st.CT) > 0.8*float64(st.CTMax) || float64(st.NAT) > 0.8*float64(st.NATMax)
	switch {
	case full:
		return gcMinInterval
	case total > 0 && float64(st.Deleted) > 0.25*float64(total):
		return max(gcMinInterval, prev/2)
	case float64(st.Deleted) < 0.05*float64(max(total, 1)):
		return min(gcMaxInterval, prev*2)
	}
	return prev
}

func conntrackGC(ctx context.Context, dp *datapath.Datapath, m *metrics.Metrics, log *slog.Logger) {
	interval := gcStartInterval
	for {
		m.ConntrackGCInterval.Set(interval.Seconds())
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
		st, err := dp.GCConntrack()
		if err != nil {
			log.Warn("Conntrack GC failed; retrying", logfields.Error, err)
			interval = gcMinInterval
			continue
		}
		m.ConntrackEntries.WithLabelValues("ct").Set(float64(st.CT))
		m.ConntrackEntries.WithLabelValues("nat").Set(float64(st.NAT))
		m.ConntrackGCDeleted.Add(float64(st.Deleted))
		interval = nextGCInterval(interval, st)
		log.Debug("Conntrack GC", logfields.Deleted, st.Deleted, logfields.Count, st.CT+st.NAT, logfields.Interval, interval)
	}
}

func addrOrNone(a netip.Addr) string {
	if !a.IsValid() {
		return "none"
	}
	return a.String()
}
