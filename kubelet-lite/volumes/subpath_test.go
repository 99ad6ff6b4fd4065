package volumes

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hivelet/hivelet/test/testnet"
)

// volume makes a volume directory and, beside it, a directory standing
// for the host that nothing may reach through the volume.
func volume(t *testing.T) (vol, host string) {
	t.Helper()
	root := t.TempDir()
	vol, host = filepath.Join(root, "vol"), filepath.Join(root, "host")
	for _, d := range []string{vol, host} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(host, "secret"), []byte("host data"), 0o600); err != nil {
		t.Fatal(err)
	}
	return vol, host
}

func TestOpenSubPathRefusesEscapes(t *testing.T) {
	vol, host := volume(t)
	mustLink := func(target, name string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(vol, name)); err != nil {
			t.Fatal(err)
		}
	}
	mustLink("/", "root")
	mustLink(host, "abs")
	mustLink("../host", "rel")
	mustLink("/proc/self/root", "magic")
	if err := os.MkdirAll(filepath.Join(vol, "a/b"), 0o755); err != nil {
		t.Fatal(err)
	}
	mustLink("../../../host", "a/b/deep")
	for _, sub := range []string{"root", "root/etc", "abs", "abs/secret", "rel/secret", "magic/etc", "a/b/deep/secret",
		"../host", "a/../../host", "/etc", "abs/newdir/deeper", "root/tmp/created-by-pod"} {
		f, err := OpenSubPath(vol, sub)
		if err == nil {
			f.Close()
			t.Errorf("subPath %q opened; want a refusal", sub)
			continue
		}
		if !errors.Is(err, ErrEscapes) {
			t.Errorf("subPath %q: %v; want ErrEscapes", sub, err)
		}
	}
	if _, err := os.Stat("/tmp/created-by-pod"); err == nil {
		t.Error("a refused subPath created a directory on the host")
	}
	if ents, _ := os.ReadDir(host); len(ents) != 1 {
		t.Errorf("host dir changed: %v", ents)
	}
}

func TestOpenSubPathInside(t *testing.T) {
	vol, _ := volume(t)
	if err := os.MkdirAll(filepath.Join(vol, "data/real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vol, "data/real/file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(vol, "data/alias")); err != nil {
		t.Fatal(err)
	}
	for sub, want := range map[string]string{
		"":                "vol",
		"data/real":       "real",
		"data/alias":      "real", // a link that stays inside is followed
		"data/real/file":  "file", // a subPath may name a file
		"new/dirs/a/b":    "b",    // created as the kubelet does
		"./data/./real/.": "real",
	} {
		f, err := OpenSubPath(vol, sub)
		if err != nil {
			t.Errorf("subPath %q: %v", sub, err)
			continue
		}
		real, err := os.Readlink("/proc/self/fd/" + itoa(int(f.Fd())))
		f.Close()
		if err != nil || filepath.Base(real) != want {
			t.Errorf("subPath %q resolved to %q (%v), want .../%s", sub, real, err, want)
		}
	}
	if st, err := os.Stat(filepath.Join(vol, "new/dirs/a/b")); err != nil || !st.IsDir() {
		t.Errorf("missing subPath not created: %v", err)
	}
}

func TestCheckSubPath(t *testing.T) {
	for sub, ok := range map[string]bool{"": true, "a/b": true, "a..b": true, "..a": true, "..": false, "a/../b": false, "/a": false} {
		if err := CheckSubPath(sub); (err == nil) != ok {
			t.Errorf("CheckSubPath(%q) = %v", sub, err)
		}
	}
}

func TestPrivilegedBindSubPath(t *testing.T) {
	testnet.RequireRoot(t)
	vol, _ := volume(t)
	if err := os.MkdirAll(filepath.Join(vol, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vol, "file"), []byte("in volume"), 0o644); err != nil {
		t.Fatal(err)
	}
	pod := t.TempDir()
	for sub, target := range map[string]string{"dir": filepath.Join(pod, "subpaths/c/0"), "file": filepath.Join(pod, "subpaths/c/1")} {
		f, err := OpenSubPath(vol, sub)
		if err != nil {
			t.Fatal(err)
		}
		// A second bind (the container's next attempt) replaces the first.
		for range 2 {
			if err := BindSubPath(f, target); err != nil {
				t.Fatal(err)
			}
		}
		f.Close()
		if mps, _ := MountsBeneath(target); len(mps) != 1 {
			t.Errorf("%s: mounts %v, want exactly one", target, mps)
		}
	}
	if err := os.WriteFile(filepath.Join(pod, "subpaths/c/0/through-bind"), []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(vol, "dir/through-bind")); err != nil {
		t.Errorf("a write through the bind did not land in the volume: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(pod, "subpaths/c/1")); err != nil || string(b) != "in volume" {
		t.Errorf("file subPath reads %q %v", b, err)
	}
	if err := RemovePodDir(pod); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(vol, "dir/through-bind")); err != nil {
		t.Errorf("removing the pod dir emptied the volume behind a bind: %v", err)
	}
}
