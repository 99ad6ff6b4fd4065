package volumes

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/hivelet/hivelet/test/testnet"
)

// A volume's files take the fsGroup, group-writable, its directories
// setgid; a link inside, to a file outside, changes nothing outside.
func TestPrivilegedSetGroup(t *testing.T) {
	testnet.RequireRoot(t) // chown
	root, outside := t.TempDir(), filepath.Join(t.TempDir(), "host-file")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(outside, []byte("host"), 0o600))
	must(os.MkdirAll(filepath.Join(root, "a", "b"), 0o700))
	must(os.WriteFile(filepath.Join(root, "a", "b", "f"), []byte("x"), 0o600))
	must(os.Symlink(outside, filepath.Join(root, "a", "escape")))
	must(os.Symlink("/", filepath.Join(root, "rootlink")))
	if GroupSet(root, 4242) {
		t.Fatal("GroupSet before SetGroup")
	}
	must(SetGroup(root, 4242))
	for _, p := range []string{root, filepath.Join(root, "a"), filepath.Join(root, "a", "b"), filepath.Join(root, "a", "b", "f")} {
		st, err := os.Lstat(p)
		must(err)
		sys := st.Sys().(*syscall.Stat_t)
		if sys.Gid != 4242 || st.Mode().Perm()&0o060 != 0o060 {
			t.Fatalf("%s: gid %d mode %v", p, sys.Gid, st.Mode())
		}
		if st.IsDir() && st.Mode()&os.ModeSetgid == 0 {
			t.Fatalf("%s: directory without setgid: %v", p, st.Mode())
		}
	}
	st, err := os.Stat(outside)
	must(err)
	if sys := st.Sys().(*syscall.Stat_t); sys.Gid == 4242 || st.Mode().Perm() != 0o600 {
		t.Fatalf("the walk changed a file outside through a link: gid %d mode %v", sys.Gid, st.Mode())
	}
	st, err = os.Stat("/")
	must(err)
	if sys := st.Sys().(*syscall.Stat_t); sys.Gid == 4242 {
		t.Fatal("the walk changed / through a link")
	}
	if !GroupSet(root, 4242) {
		t.Fatal("GroupSet after SetGroup")
	}
}
