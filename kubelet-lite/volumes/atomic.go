package volumes

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// File is one file of a volume that Writer publishes.
type File struct {
	Data []byte
	Mode os.FileMode // permission bits only
}

// Writer publishes ConfigMap, Secret, downward API and projected content
// as the kubelet's atomic writer lays it out: the files in a fresh
// "..<timestamp>" directory, a "..data" link swapped to it by rename (a
// reader never sees half an update), and a link per top-level name
// through "..data". Writer keeps its own record of what it wrote in
// every volume; it never reads a link back, so a container that
// re-points "..data" (or any name) cannot make the kubelet read, write
// or delete anything outside the volume directory.
type Writer struct {
	mu      sync.Mutex
	written map[string]*record // by volume directory; guarded by mu
}

type record struct {
	files   map[string]File
	changed map[string]time.Time // when each file's content last changed
	gid     int
}

// NewWriter returns a Writer with no record: the first Write to each
// volume after a start rewrites it.
func NewWriter() *Writer { return &Writer{written: map[string]*record{}} }

const (
	dataLink    = "..data"
	dataLinkTmp = "..data_tmp"
)

// CheckFilePath refuses a volume item path the API server would refuse:
// empty, absolute, with a ".." component or a component starting with
// "..", which would collide with the writer's own names.
func CheckFilePath(p string) error {
	if p == "" {
		return errors.New("empty item path")
	}
	if filepath.IsAbs(p) {
		return fmt.Errorf("item path %q must be relative", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return fmt.Errorf("item path %q must not contain \"..\"", p)
		}
		if strings.HasPrefix(part, "..") {
			return fmt.Errorf("item path %q must not start with \"..\"", p)
		}
	}
	return nil
}

// Write makes dir hold exactly files (owned by group gid when gid >= 0,
// group-readable then, as fsGroup asks) and reports whether anything
// changed. dir belongs to the kubelet; what is inside it may have been
// changed by a container.
func (w *Writer) Write(dir string, files map[string]File, gid int) (bool, error) {
	for p := range files {
		if err := CheckFilePath(p); err != nil {
			return false, err
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	rec := w.written[dir]
	if rec != nil && rec.gid == gid && sameFiles(rec.files, files) {
		return false, nil
	}
	if err := mkdirOwn(dir); err != nil {
		return false, err
	}
	ts, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return false, fmt.Errorf("create volume payload dir: %w", err)
	}
	if err := writePayload(ts, files, gid); err != nil {
		_ = os.RemoveAll(ts)
		return false, err
	}
	if err := swapData(dir, filepath.Base(ts)); err != nil {
		_ = os.RemoveAll(ts)
		return false, err
	}
	tops := topNames(files)
	if err := linkTops(dir, tops); err != nil {
		return true, err
	}
	prune(dir, filepath.Base(ts), tops)
	now := time.Now()
	next := &record{files: files, changed: map[string]time.Time{}, gid: gid}
	for p, f := range files {
		next.changed[p] = now
		if rec != nil && rec.files[p].Mode == f.Mode && bytes.Equal(rec.files[p].Data, f.Data) {
			next.changed[p] = rec.changed[p]
		}
	}
	w.written[dir] = next
	return true, nil
}

// Current returns what Write last put at path p of dir and since when it
// holds that content; false when this Writer wrote nothing there.
func (w *Writer) Current(dir, p string) ([]byte, time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	rec := w.written[dir]
	if rec == nil {
		return nil, time.Time{}, false
	}
	f, ok := rec.files[p]
	return f.Data, rec.changed[p], ok
}

// Forget drops the record of every volume at or below dir (the pod is
// gone, or a mount now hides what was written).
func (w *Writer) Forget(dir string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for d := range w.written {
		if d == dir || strings.HasPrefix(d, dir+"/") {
			delete(w.written, d)
		}
	}
}

func sameFiles(a, b map[string]File) bool {
	if len(a) != len(b) {
		return false
	}
	for p, f := range a {
		g, ok := b[p]
		if !ok || g.Mode != f.Mode || !bytes.Equal(g.Data, f.Data) {
			return false
		}
	}
	return true
}

// mkdirOwn creates dir if needed and refuses one that is a link.
func mkdirOwn(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create volume dir: %w", err)
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("create volume dir: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("volume dir %s is not a directory", dir)
	}
	return nil
}

// writePayload fills the fresh directory ts: nothing else knows it yet.
func writePayload(ts string, files map[string]File, gid int) error {
	if err := os.Chmod(ts, 0o755); err != nil {
		return err
	}
	for p, f := range files {
		full := filepath.Join(ts, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		mode := f.Mode & 0o777
		if gid >= 0 {
			mode |= 0o440
		}
		if err := os.WriteFile(full, f.Data, mode); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		if err := os.Chmod(full, mode); err != nil { // past the umask
			return fmt.Errorf("write %s: %w", p, err)
		}
		if gid >= 0 {
			if err := os.Lchown(full, -1, gid); err != nil {
				return fmt.Errorf("write %s: %w", p, err)
			}
		}
	}
	if gid >= 0 {
		return filepath.WalkDir(ts, func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return err
			}
			return os.Lchown(p, -1, gid)
		})
	}
	return nil
}

// swapData points ..data at ts in one rename. Whatever sits at ..data is
// replaced, never followed.
func swapData(dir, ts string) error {
	tmp := filepath.Join(dir, dataLinkTmp)
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.Symlink(ts, tmp); err != nil {
		return fmt.Errorf("link volume payload: %w", err)
	}
	data := filepath.Join(dir, dataLink)
	if st, err := os.Lstat(data); err == nil && st.Mode()&os.ModeSymlink == 0 {
		if err := os.RemoveAll(data); err != nil { // not ours: a link is all we put there
			return err
		}
	}
	if err := os.Rename(tmp, data); err != nil {
		return fmt.Errorf("swap volume payload: %w", err)
	}
	return nil
}

func topNames(files map[string]File) map[string]bool {
	tops := map[string]bool{}
	for p := range files {
		tops[strings.SplitN(p, "/", 2)[0]] = true
	}
	return tops
}

// linkTops makes each top-level name a link through ..data.
func linkTops(dir string, tops map[string]bool) error {
	for top := range tops {
		link, want := filepath.Join(dir, top), filepath.Join(dataLink, top)
		if cur, err := os.Readlink(link); err == nil && cur == want {
			continue // reading the link itself is safe: nothing is followed
		}
		if err := os.RemoveAll(link); err != nil {
			return err
		}
		if err := os.Symlink(want, link); err != nil {
			return fmt.Errorf("link %s: %w", top, err)
		}
	}
	return nil
}

// prune removes earlier payload directories and the links of names no
// longer published. Only directories (not links to them) are removed,
// by their name in dir; a link is removed itself, never its target.
func prune(dir, keep string, tops map[string]bool) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		name := e.Name()
		p := filepath.Join(dir, name)
		switch {
		case name == dataLink || name == keep:
		case strings.HasPrefix(name, ".."):
			if e.IsDir() || name == dataLinkTmp {
				_ = os.RemoveAll(p)
			}
		case !tops[name] && e.Type()&os.ModeSymlink != 0:
			_ = os.Remove(p)
		}
	}
}
