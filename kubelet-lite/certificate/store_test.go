package certificate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStoreKeepsCurrentAndPrevious: each save becomes current through
// the link; only the two newest pairs stay.
func TestStoreKeepsCurrentAndPrevious(t *testing.T) {
	ca := newTestCA(t)
	store := Store{Dir: t.TempDir()}
	var last string
	for range 4 {
		key, keyPEM, _ := newKey()
		pair, err := store.Save(ca.sign(t, csrFor(t, key), time.Now(), time.Hour), keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		last = pair.Leaf.SerialNumber.String()
	}
	cur, err := store.Load()
	if err != nil || cur.Leaf.SerialNumber.String() != last {
		t.Fatalf("current pair %v (%v), want serial %s", cur, err, last)
	}
	ents, _ := os.ReadDir(store.Dir)
	var pairs []string
	for _, e := range ents {
		if e.Name() != currentName {
			pairs = append(pairs, e.Name())
		}
	}
	if len(pairs) != keepPairs {
		t.Errorf("files %v, want %d pairs and the link", pairs, keepPairs)
	}
	target, _ := os.Readlink(store.CurrentPath())
	if strings.Contains(target, "/") {
		t.Errorf("link target %q is not relative to the directory", target)
	}
}

func TestStoreRefusesMismatchedPair(t *testing.T) {
	ca := newTestCA(t)
	store := Store{Dir: t.TempDir()}
	key, _, _ := newKey()
	_, otherPEM, _ := newKey()
	if _, err := store.Save(ca.sign(t, csrFor(t, key), time.Now(), time.Hour), otherPEM); err == nil {
		t.Fatal("a certificate saved with another key")
	}
	if _, err := os.Stat(filepath.Join(store.Dir, currentName)); !os.IsNotExist(err) {
		t.Errorf("link made for a refused pair: %v", err)
	}
}
