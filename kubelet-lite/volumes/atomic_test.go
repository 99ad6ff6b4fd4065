package volumes

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hivelet/hivelet/test/testnet"
)

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriterPublishesAndUpdates(t *testing.T) {
	vol, _ := volume(t)
	w := NewWriter()
	changed, err := w.Write(vol, map[string]File{"a": {Data: []byte("1"), Mode: 0o644}, "d/b": {Data: []byte("2"), Mode: 0o400}}, -1)
	if err != nil || !changed {
		t.Fatalf("first write: %v %v", changed, err)
	}
	if read(t, filepath.Join(vol, "a")) != "1" || read(t, filepath.Join(vol, "d/b")) != "2" {
		t.Error("content not published")
	}
	if st, _ := os.Stat(filepath.Join(vol, "d/b")); st.Mode().Perm() != 0o400 {
		t.Errorf("item mode %v, want 0400", st.Mode().Perm())
	}
	if changed, _ := w.Write(vol, map[string]File{"a": {Data: []byte("1"), Mode: 0o644}, "d/b": {Data: []byte("2"), Mode: 0o400}}, -1); changed {
		t.Error("the same content was written again")
	}
	data, since, ok := w.Current(vol, "a")
	if !ok || string(data) != "1" {
		t.Errorf("Current: %q %v", data, ok)
	}
	// "d" goes away, "a" changes, "c" appears.
	if _, err := w.Write(vol, map[string]File{"a": {Data: []byte("one"), Mode: 0o644}, "c": {Data: []byte("3"), Mode: 0o644}}, -1); err != nil {
		t.Fatal(err)
	}
	if read(t, filepath.Join(vol, "a")) != "one" || read(t, filepath.Join(vol, "c")) != "3" {
		t.Error("update not published")
	}
	if _, err := os.Lstat(filepath.Join(vol, "d")); !os.IsNotExist(err) {
		t.Errorf("a removed key's link is still there: %v", err)
	}
	if _, since2, _ := w.Current(vol, "a"); !since2.After(since) {
		t.Error("a changed file's time did not move")
	}
	ents, _ := os.ReadDir(vol)
	var payloads int
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "..") && e.IsDir() {
			payloads++
		}
	}
	if payloads != 1 {
		t.Errorf("%d payload dirs left, want 1: %v", payloads, ents)
	}
}

func TestWriterIgnoresLinksAContainerChanged(t *testing.T) {
	vol, host := volume(t)
	w := NewWriter()
	if _, err := w.Write(vol, map[string]File{"labels": {Data: []byte("a=b"), Mode: 0o644}}, -1); err != nil {
		t.Fatal(err)
	}
	// What a container with the volume writable could do: point ..data
	// and a published name at the host, and plant a look-alike payload
	// directory that is a link to the host.
	for name, target := range map[string]string{"..data": host, "labels": filepath.Join(host, "secret"), "..2020_01_01_00_00_00.1": host} {
		if err := os.RemoveAll(filepath.Join(vol, name)); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(vol, name)); err != nil {
			t.Fatal(err)
		}
	}
	// A restarted kubelet has no record: it must still not follow them.
	for _, wr := range []*Writer{w, NewWriter()} {
		if _, err := wr.Write(vol, map[string]File{"labels": {Data: []byte("a=c"), Mode: 0o644}}, -1); err != nil {
			t.Fatal(err)
		}
		if got := read(t, filepath.Join(host, "secret")); got != "host data" {
			t.Fatalf("host file now %q", got)
		}
		if ents, _ := os.ReadDir(host); len(ents) != 1 {
			t.Fatalf("host dir changed: %v", ents)
		}
		if got := read(t, filepath.Join(vol, "labels")); got != "a=c" {
			t.Errorf("volume reads %q after the rewrite", got)
		}
	}
	if _, err := w.Write(vol, map[string]File{"../escape": {Data: []byte("x")}}, -1); err == nil {
		t.Error("an item path with .. was written")
	}
	if _, err := w.Write(vol, map[string]File{"..data/x": {Data: []byte("x")}}, -1); err == nil {
		t.Error("an item path starting with .. was written")
	}
}

func TestPrivilegedWriterFSGroup(t *testing.T) {
	testnet.RequireRoot(t)
	vol, _ := volume(t)
	if _, err := NewWriter().Write(vol, map[string]File{"d/k": {Data: []byte("v"), Mode: 0o600}}, 2345); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(vol, "d/k"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want group-readable 0640", st.Mode().Perm())
	}
	if gid := st.Sys().(*syscall.Stat_t).Gid; gid != 2345 {
		t.Errorf("group %d, want 2345", gid)
	}
}
