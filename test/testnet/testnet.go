// Package testnet builds throwaway network namespaces, veths and cgroups for
// privileged tests, and removes them when the test ends. Nothing it makes is
// reachable from, or routed through, the machine's own namespace.
package testnet

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netns"
)

var seq atomic.Int32

// uniqueName returns a short name unique to this process and call.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s%d-%d", prefix, os.Getpid()%100000, seq.Add(1))
}

// RequireRoot fails (never skips) a privileged test run without root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("privileged test: run as root (make test does)")
	}
}

// Run executes a command and fails the test on error.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// NS is a named network namespace made by the test.
type NS struct {
	Name   string
	handle netns.NsHandle
}

// NewNS creates a network namespace with lo up; it is deleted at cleanup.
func NewNS(t testing.TB, prefix string) *NS {
	t.Helper()
	name := uniqueName(prefix)
	Run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("open netns %s: %v", name, err)
	}
	t.Cleanup(func() { h.Close() })
	n := &NS{Name: name, handle: h}
	n.IP(t, "link", "set", "lo", "up")
	// Addresses in test namespaces are used at once: no duplicate
	// address detection.
	n.Sysctl(t, "net.ipv6.conf.all.accept_dad", "0")
	n.Sysctl(t, "net.ipv6.conf.default.accept_dad", "0")
	return n
}

// Path is the namespace's bind-mount path, for nsenter --net.
func (n *NS) Path() string { return filepath.Join("/run/netns", n.Name) }

// IP runs `ip -n NS args...`.
func (n *NS) IP(t testing.TB, args ...string) string {
	t.Helper()
	return Run(t, "ip", append([]string{"-n", n.Name}, args...)...)
}

// Sysctl sets a sysctl inside the namespace.
func (n *NS) Sysctl(t testing.TB, key, value string) {
	t.Helper()
	err := n.Do(func() error {
		p := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
		return os.WriteFile(p, []byte(value), 0o644)
	})
	if err != nil {
		t.Fatalf("sysctl %s=%s in %s: %v", key, value, n.Name, err)
	}
}

// Do runs fn on an OS thread that has entered the namespace. Sockets fn
// creates stay in the namespace after it returns. If the thread cannot be
// switched back it is left locked, so Go retires it.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(n.handle); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", n.Name, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("leave netns %s: %w", n.Name, err)
			return // thread stays locked and dies with the goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Must runs fn in the namespace and fails the test on error.
func (n *NS) Must(t testing.TB, fn func() error) {
	t.Helper()
	if err := n.Do(fn); err != nil {
		t.Fatal(err)
	}
}
