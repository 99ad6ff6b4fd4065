package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestFilesKeepTheirModes checks the files layer: a setuid program (the
// nonewprivs image's) stays setuid in the image, an ordinary file keeps
// its permissions, and the file replaces busybox's applet of that name.
func TestFilesKeepTheirModes(t *testing.T) {
	if _, err := os.Stat(BusyboxBin); err != nil {
		t.Skipf("%s: %v (hack/deps.sh installs busybox-static)", BusyboxBin, err)
	}
	dir := t.TempDir()
	suid, plain := filepath.Join(dir, "nnp"), filepath.Join(dir, "data.json")
	for p, mode := range map[string]os.FileMode{suid: 0o755 | os.ModeSetuid, plain: 0o640} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	img, err := Build(Spec{Files: map[string]string{"/usr/local/bin/nnp": suid, "/www/data.json": plain}})
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ Layers []struct{ Digest string } }
	if err := json.Unmarshal(img.Manifest, &m); err != nil || len(m.Layers) != 2 {
		t.Fatalf("manifest %s: %v, want two layers", img.Manifest, err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(img.Blobs[m.Layers[1].Digest]))
	if err != nil {
		t.Fatal(err)
	}
	modes := map[string]int64{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		modes[h.Name] = h.Mode
	}
	if modes["usr/local/bin/nnp"] != 0o4755 || modes["www/data.json"] != 0o640 {
		t.Errorf("nnp %o, data.json %o in the layer, want 4755 and 640", modes["usr/local/bin/nnp"], modes["www/data.json"])
	}
}
