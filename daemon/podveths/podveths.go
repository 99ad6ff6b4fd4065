// Package podveths keeps hivelet's pod programs on every pod veth
// hivelet-cni creates (its hl* host ends), as link notifications arrive
// and on a relist that catches what a lost one missed; pins of veths
// that are gone are removed.
package podveths

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

func isPodVeth(l netlink.Link) bool {
	_, veth := l.(*netlink.Veth)
	return veth && strings.HasPrefix(l.Attrs().Name, link.HostPrefix)
}

// Watcher keeps the pod programs on every pod veth: link notifications
// attach at once; a relist every podVethResync catches what a lost
// notification (or a failed subscription) missed.
type Watcher struct {
	log      *slog.Logger
	attached map[string]bool
	// The kernel as the watcher uses it (fakes in tests).
	links  func() ([]netlink.Link, error)
	attach func(name string) error
	detach func(name string) error
}

// New returns a watcher attaching dp's pod programs, pinned under bpffs.
func New(bpffs string, dp *datapath.Datapath, log *slog.Logger) *Watcher {
	return &Watcher{log: log, attached: map[string]bool{}, links: netlink.LinkList, attach: dp.AttachPod,
		detach: func(name string) error { return datapath.DetachPod(bpffs, name) }}
}

const podVethResync = 2 * time.Second

// Resync attaches to every pod veth and drops pins of gone ones; stale
// lists pins to check (nil: those attached so far). A veth whose detach
// failed stays listed, so the next resync tries again instead of leaving
// its pins behind.
func (w *Watcher) Resync(stale []string) (int, error) {
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

// Run keeps the programs on until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
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
				if _, err := w.Resync(nil); err != nil {
					w.log.Warn("Cannot attach to pod veths; retrying", logfields.Error, err)
				}
			}
		case <-tick.C:
			if updates == nil {
				subscribe()
			}
			if _, err := w.Resync(nil); err != nil {
				w.log.Warn("Cannot attach to pod veths; retrying", logfields.Error, err)
			}
		}
	}
}
