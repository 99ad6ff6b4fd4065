package testnet

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hivelet/hivelet/datapath"
)

func cgroup2Root(t testing.TB) string {
	t.Helper()
	root, err := datapath.Cgroup2Root()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// NewCgroup creates a child cgroup of the cgroup2 root (never the root
// itself, so the machine's own sockets are untouched) and removes it at
// cleanup, after moving any process left in it back to the root.
func NewCgroup(t testing.TB) string {
	t.Helper()
	root := cgroup2Root(t)
	path := filepath.Join(root, uniqueName("hivelet-test-"))
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatalf("create cgroup: %v", err)
	}
	t.Cleanup(func() {
		if procs, err := os.ReadFile(filepath.Join(path, "cgroup.procs")); err == nil {
			for _, pid := range strings.Fields(string(procs)) {
				_ = os.WriteFile(filepath.Join(root, "cgroup.procs"), []byte(pid), 0o644)
			}
		}
		// rmdir fails while the kernel still releases the cgroup.
		for i := 0; i < 50; i++ {
			if err := os.Remove(path); err == nil || os.IsNotExist(err) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("remove cgroup %s: still busy", path)
	})
	return path
}

// currentCgroup2 returns the cgroup v2 path of this process.
func currentCgroup2(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			return filepath.Join(cgroup2Root(t), rest)
		}
	}
	t.Fatal("this process has no cgroup v2 membership")
	return ""
}

// EnterCgroup moves the whole test process into cgroup until the test ends:
// socket hooks follow the process's cgroup, not its namespace.
func EnterCgroup(t testing.TB, cgroup string) {
	t.Helper()
	orig := currentCgroup2(t)
	pid := []byte(strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(filepath.Join(cgroup, "cgroup.procs"), pid, 0o644); err != nil {
		t.Fatalf("enter cgroup %s: %v", cgroup, err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(filepath.Join(orig, "cgroup.procs"), pid, 0o644); err != nil {
			t.Errorf("leave cgroup %s: %v", cgroup, fmt.Errorf("back to %s: %w", orig, err))
		}
	})
}
