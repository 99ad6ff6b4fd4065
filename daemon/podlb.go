package daemon

import (
	"context"
	"fmt"
	"log/slog"

	"golang.org/x/sys/unix"

	"github.com/hivelet/hivelet/daemon/logfields"
	"github.com/hivelet/hivelet/daemon/podveths"
	"github.com/hivelet/hivelet/datapath"
)

// hostNetnsCookie is the cookie of the agent's network namespace (the
// host's), as bpf_get_netns_cookie reports it.
func hostNetnsCookie() (uint64, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		return 0, fmt.Errorf("read netns cookie: %w", err)
	}
	defer unix.Close(fd)
	c, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		return 0, fmt.Errorf("read netns cookie: %w (needs Linux 5.14 or later)", err)
	}
	return c, nil
}

// startPodLB sets socket LB's scope and, with --socket-lb-host-only,
// keeps the pod programs on every pod veth hivelet-cni creates.
func startPodLB(ctx context.Context, cfg Config, dp *datapath.Datapath, log *slog.Logger) error {
	pinned, err := datapath.AttachedPods(cfg.BPFFSDir)
	if err != nil {
		return err
	}
	if !cfg.SocketLBHostOnly {
		for _, v := range pinned {
			if err := datapath.DetachPod(cfg.BPFFSDir, v); err != nil {
				return err
			}
		}
		return dp.SetSocketLBHostOnly(0)
	}
	cookie, err := hostNetnsCookie()
	if err != nil {
		return err
	}
	w := podveths.New(cfg.BPFFSDir, dp, log)
	n, err := w.Resync(pinned)
	if err != nil {
		return err
	}
	// Pods are served per packet before socket LB lets go of them.
	if err := dp.SetSocketLBHostOnly(cookie); err != nil {
		return err
	}
	log.Info("Socket LB serves the host only; pods are served on their veths", logfields.Count, n)
	go w.Run(ctx)
	return nil
}
