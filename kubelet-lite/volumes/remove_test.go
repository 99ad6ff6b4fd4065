package volumes

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hivelet/hivelet/test/testnet"
)

func itoa(i int) string { return strconv.Itoa(i) }

func TestRemovePodDirKeepsLinkTargets(t *testing.T) {
	vol, host := volume(t)
	if err := os.Symlink(host, filepath.Join(vol, "to-host")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(vol, "a/b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(host, "secret"), filepath.Join(vol, "a/b/file")); err != nil {
		t.Fatal(err)
	}
	if err := RemovePodDir(vol); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(vol); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod dir still there: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(host, "secret")); err != nil || string(b) != "host data" {
		t.Errorf("a link target outside was touched: %q %v", b, err)
	}
	if err := RemovePodDir(vol); err != nil {
		t.Errorf("removing twice: %v", err)
	}
}

func TestPrivilegedRemovePodDirUnmountsFirst(t *testing.T) {
	testnet.RequireRoot(t)
	vol, host := volume(t)
	mp := filepath.Join(vol, "volumes/mem")
	if _, err := EnsureTmpfs(mp, 1<<20, 0o777); err != nil {
		t.Fatal(err)
	}
	if again, err := EnsureTmpfs(mp, 1<<20, 0o777); err != nil || again {
		t.Errorf("a second EnsureTmpfs mounted again (%v, %v)", again, err)
	}
	bind := filepath.Join(vol, "volume-subpaths/x/c/0")
	if err := os.MkdirAll(bind, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(host, bind, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	if err := RemovePodDir(vol); err != nil {
		t.Fatal(err)
	}
	if mps, _ := MountsBeneath(vol); len(mps) != 0 {
		t.Errorf("mounts left: %v", mps)
	}
	if b, err := os.ReadFile(filepath.Join(host, "secret")); err != nil || string(b) != "host data" {
		t.Errorf("the bind-mounted host dir was emptied: %q %v", b, err)
	}
}

func TestPrivilegedRemovePodDirStopsAtMounts(t *testing.T) {
	testnet.RequireRoot(t)
	vol, host := volume(t)
	bind := filepath.Join(vol, "inner")
	if err := os.MkdirAll(bind, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(host, bind, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer Unmount(bind)
	// What a mount that appears after the unmount pass looks like to the walk.
	if err := removeTree(vol, devOf(t, vol)); !errors.Is(err, ErrMounted) {
		t.Errorf("removeTree across a bind mount: %v, want ErrMounted", err)
	}
	if _, err := os.Stat(filepath.Join(host, "secret")); err != nil {
		t.Errorf("the walk descended into a mount: %v", err)
	}
}

func devOf(t *testing.T, p string) uint64 {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Dev
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/a\040b\134c`); got != `/a b\c` {
		t.Errorf("got %q", got)
	}
}
