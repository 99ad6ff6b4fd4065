package daemon

import (
	"context"
	"log/slog"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/hivelet/hivelet/daemon/k8s"
	"github.com/hivelet/hivelet/daemon/logfields"
	"github.com/hivelet/hivelet/daemon/noderoutes"
	"github.com/hivelet/hivelet/daemon/runner"
)

// startPodRoutes keeps a route to every other node's pod CIDRs, from the
// Node objects (native: via the node's address; vxlan: through the
// overlay device), in sync until ctx ends: on every Node change (merged), on
// the sync period, and with back-off after a failure.
func startPodRoutes(ctx context.Context, client kubernetes.Interface, cfg Config, log *slog.Logger) error {
	var nodes *k8s.Nodes
	sync := func(full bool) error {
		all := nodes.Get()
		var st noderoutes.Stats
		var err error
		switch cfg.PodRoutes {
		case "vxlan":
			local, mtu, uerr := noderoutes.Underlay(cfg.NodeName, all)
			if uerr != nil {
				err = uerr
				break
			}
			st, err = noderoutes.SyncVXLAN(local, mtu, noderoutes.DesiredTunnels(cfg.NodeName, all, local.Is6()))
		default:
			st, err = noderoutes.Sync(noderoutes.Desired(cfg.NodeName, all))
		}
		attrs := []any{logfields.Nodes, len(all), logfields.Added, st.Added, logfields.Removed, st.Removed}
		if err != nil {
			log.Error("Pod routes not fully synced; retrying", append(attrs, logfields.Error, err)...)
			return err
		}
		if st.Added+st.Removed > 0 {
			log.Info("Pod routes synced", attrs...)
		}
		return nil
	}
	r := runner.New(sync, 100*time.Millisecond, cfg.SyncPeriod)
	var err error
	if nodes, err = k8s.WatchNodes(ctx, client, r.Trigger); err != nil {
		return err
	}
	go r.Run(ctx)
	return nil
}
