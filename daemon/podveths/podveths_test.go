package podveths

import (
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/vishvananda/netlink"
)

// A pod veth whose pins could not be removed is tried again at the next
// resync, not forgotten with its pins left behind.
func TestPodVethsRetryFailedDetach(t *testing.T) {
	fail := true
	var detached []string
	w := &Watcher{log: slog.New(slog.NewTextHandler(io.Discard, nil)), attached: map[string]bool{},
		links:  func() ([]netlink.Link, error) { return nil, nil },
		attach: func(string) error { return nil },
		detach: func(name string) error {
			if fail {
				return errors.New("bpffs busy")
			}
			detached = append(detached, name)
			return nil
		}}
	// Pinned when the agent started; the pod is gone.
	if _, err := w.Resync([]string{"hlgone"}); err == nil {
		t.Fatal("a failed detach was not reported")
	}
	fail = false
	if _, err := w.Resync(nil); err != nil {
		t.Fatal(err)
	}
	if len(detached) != 1 || detached[0] != "hlgone" || w.attached["hlgone"] {
		t.Fatalf("detached %v, still listed %v", detached, w.attached)
	}
}
