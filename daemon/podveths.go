package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/hivelet/hivelet/cni-plugin/link"
	"github.com/hivelet/hivelet/daemon/logfields"
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

func isPodVeth(l netlink.Link) bool {
	_, veth := l.(*netlink.Veth)
	return veth && strings.HasPrefix(l.Attrs().Name, link.HostPrefix)
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
	w := newPodVeths(cfg.BPFFSDir, dp, log)
	n, err := w.resync(pinned)
	if err != nil {
		return err
	}
	// Pods are served per packet before socket LB lets go of them.
	if err := dp.SetSocketLBHostOnly(cookie); err != nil {
		return err
	}
	log.Info("Socket LB serves the host only; pods are served on their veths", logfields.Count, n)
	go w.run(ctx)
	return nil
}

// podVeths keeps the pod programs on every pod veth: link notifications
// attach at once; a relist every podVethResync catches what a lost
// notification (or a failed subscription) missed.
type podVeths struct {
	log      *slog.Logger
	attached map[string]bool
	// The kernel as the watcher uses it (fakes in tests).
	links  func() ([]netlink.Link, error)
	attach func(name string) error
	detach func(name string) error
}

func newPodVeths(bpffs string, dp *datapath.Datapath, log *slog.Logger) *podVeths {
	return &podVeths{log: log, attached: map[string]bool{}, links: netlink.LinkList, attach: dp.AttachPod,
		detach: func(name string) error { return datapath.DetachPod(bpffs, name) }}
}

const podVethResync = 2 * time.Second

// resync attaches to every pod veth and drops pins of gone ones; stale
// lists pins to check (nil: those attached so far). A veth whose detach
// failed stays listed, so the next resync tries again instead of leaving
// its pins behind.
func (w *podVeths) resync(stale []string) (int, error) {
	links, err := w.links()
	if err != nil {
		return 0, fmt.Errorf("list pod veths: %w", err)
	}
	present := map[string]bool{}
	for _, l := range links {
		if !isPodVeth(l) {
			continue
		}
		name := l.Attrs().Name
		present[name] = true
		if !w.attached[name] {
			if err := w.attach(name); err != nil {
				return 0, err
			}
			w.attached[name] = true
		}
	}
	if stale == nil {
		for name := range w.attached {
			stale = append(stale, name)
		}
	}
	var errs []error
	for _, name := range stale {
		if present[name] {
			continue
		}
		if err := w.detach(name); err != nil {
			w.attached[name] = true
			errs = append(errs, err)
			continue
		}
		delete(w.attached, name)
	}
	return len(present), errors.Join(errs...)
}

func (w *podVeths) run(ctx context.Context) {
	var updates chan netlink.LinkUpdate
	subscribe := func() {
		updates = make(chan netlink.LinkUpdate, 64)
		err := netlink.LinkSubscribeWithOptions(updates, ctx.Done(), netlink.LinkSubscribeOptions{
			ErrorCallback: func(err error) { w.log.Debug("Link updates stopped; relisting", logfields.Error, err) },
		})
		if err != nil {
			updates = nil
		}
	}
	subscribe()
	tick := time.NewTicker(podVethResync)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case u, ok := <-updates:
			if !ok {
				subscribe()
				continue
			}
			if isPodVeth(u.Link) && u.Header.Type == unix.RTM_NEWLINK && !w.attached[u.Link.Attrs().Name] {
				if _, err := w.resync(nil); err != nil {
					w.log.Warn("Cannot attach to pod veths; retrying", logfields.Error, err)
				}
			}
		case <-tick.C:
			if updates == nil {
				subscribe()
			}
			if _, err := w.resync(nil); err != nil {
				w.log.Warn("Cannot attach to pod veths; retrying", logfields.Error, err)
			}
		}
	}
}
