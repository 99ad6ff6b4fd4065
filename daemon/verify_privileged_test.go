package daemon

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
	"github.com/hivelet/hivelet/daemon/reconciler"
	"github.com/hivelet/hivelet/datapath"
	"github.com/hivelet/hivelet/test/testnet"
)

// TestPrivilegedVerifyAffinity: the periodic map check of Services with
// sessionAffinity ClientIP finds the kernel maps as the reconciler wrote
// them (it once reported them as drift, forcing a full resync each
// period).
func TestPrivilegedVerifyAffinity(t *testing.T) {
	testnet.RequireRoot(t)
	bpffs := filepath.Join(t.TempDir(), "bpffs")
	dp, err := datapath.Load(datapath.Config{BPFFSDir: bpffs, Sizes: datapath.MapSizes{Services: 1 << 12, Backends: 1 << 12, RevNat: 1 << 10, SockRevNat: 1 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Close(); _ = datapath.Cleanup(bpffs) })
	tr := model(20, func(s *lb.Service) { s.AffinityTimeout = 10800 })
	rec := reconciler.New(dp.LBMap(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	changes, _ := tr.Take(true)
	if _, err := rec.Sync(changes, true); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if diffs, err := rec.Verify(nil); err != nil || len(diffs) > 0 {
			t.Fatalf("check of an untouched sync with affinity: %v %v", diffs, err)
		}
	}
}
