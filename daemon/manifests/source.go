// Package manifests is the agent's standalone source: a directory of
// Kubernetes manifests (v1 Service, discovery.k8s.io/v1 EndpointSlice, in
// YAML or JSON, several documents per file), watched for changes.
//
// Bad input loses nothing: an object that fails validation is reported with
// its file, name and field, and the last valid version of it (if any) stays
// in service; a document that cannot even be identified keeps every object
// its file held before.
package manifests

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
	"github.com/hivelet/hivelet/daemon/logfields"
)

// Handler receives every change as {previous, current}; nil previous is
// an add, nil current a delete. Handlers record and return: no work.
type Handler interface {
	OnServiceUpdate(prev, cur *lb.Service)
	OnEndpointSliceUpdate(prev, cur *lb.EndpointSlice)
}

// fileState is what one file contributed at the last load.
type fileState struct {
	stat    fileStat
	objects []object // a slice, not a map: files can hold 100k objects
	errs    []error  // rejections found when it was parsed
}

type fileStat struct {
	size  int64
	mtime time.Time
	ino   uint64
}

// Source reads and watches a manifests directory. Load and Run must not
// be called concurrently; Run calls Load itself.
type Source struct {
	dir     string
	handler Handler
	log     *slog.Logger
	// Rescan is how often the directory is re-read even without an event,
	// in case a notification was missed; only changed files are parsed.
	Rescan time.Duration

	files  map[string]*fileState // by file name; owned by the loading goroutine
	merged map[objKey]object     // what the handler has been told
	errs   []error               // rejections of the last load
	names  map[string]string     // interned namespaces
}

func (s *Source) intern(v string) string {
	if i, ok := s.names[v]; ok {
		return i
	}
	s.names[v] = v
	return v
}

// New returns a source for dir that reports to h.
func New(dir string, h Handler, log *slog.Logger) *Source {
	return &Source{dir: dir, handler: h, log: log, Rescan: 10 * time.Second,
		files: map[string]*fileState{}, merged: map[objKey]object{}, names: map[string]string{}}
}

// Errors returns the rejections of the last load.
func (s *Source) Errors() []error { return slices.Clone(s.errs) }

func isManifest(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false // editors' swap and temp files
	}
	switch filepath.Ext(name) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// Load reads every file of the directory, tells the handler what changed
// and returns the objects it rejected, joined. A missing or unreadable
// directory is an error and changes nothing.
func (s *Source) Load() error { return s.load(nil) }

// load re-parses the files named in changed (all when nil) and every file
// whose size, mtime or inode moved.
func (s *Source) load(changed map[string]bool) error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("read manifests dir %s: %w", s.dir, err)
	}
	var rejects []error
	files := map[string]*fileState{}
	for _, e := range entries {
		if e.IsDir() || !isManifest(e.Name()) {
			continue
		}
		fs, ferrs := s.loadFile(e.Name(), changed == nil || changed[e.Name()])
		rejects = append(rejects, ferrs...)
		if fs != nil {
			files[e.Name()] = fs
		}
	}
	s.files = files
	merged, dups := s.merge()
	s.errs = append(rejects, dups...)
	for _, err := range s.errs {
		s.log.Error("Rejected manifest", logfields.Error, err)
	}
	s.publish(merged)
	return errors.Join(s.errs...)
}

// loadFile parses one file unless it is unchanged since the last load.
func (s *Source) loadFile(name string, force bool) (*fileState, []error) {
	path := filepath.Join(s.dir, name)
	prev := s.files[name]
	st, err := statFile(path)
	if err == nil && !force && prev != nil && prev.stat == st {
		return prev, prev.errs
	}
	data, err := os.ReadFile(path)
	if err != nil {
		rerr := &ObjectError{File: name, Err: fmt.Errorf("read: %w", err)}
		return prev, []error{rerr} // keep what it had
	}
	docs, perr := parseFile(data, s.intern)
	fs := &fileState{stat: st, objects: make([]object, 0, len(docs))}
	var errs []error
	keepAll := perr != nil
	var prevByKey map[objKey]object // built only when a rejection needs it
	if perr != nil {
		errs = append(errs, &ObjectError{File: name, Err: perr})
	}
	seen := map[objKey]bool{}
	for _, d := range docs {
		if d.key == (objKey{}) {
			keepAll = true
			errs = append(errs, &ObjectError{File: name, Doc: d.doc, Err: d.err})
			continue
		}
		seen[d.key] = true
		if d.err != nil {
			errs = append(errs, &ObjectError{File: name, Doc: d.doc, Obj: d.key.String(), Err: d.err})
			if prevByKey == nil {
				prevByKey = prev.byKey()
			}
			if old, ok := prevByKey[d.key]; ok {
				fs.objects = append(fs.objects, old) // the last valid version stays in service
			}
			continue
		}
		fs.objects = append(fs.objects, d.obj)
	}
	if keepAll && prev != nil {
		// A broken document might have been any of the file's objects.
		for _, o := range prev.objects {
			if !seen[o.key()] {
				fs.objects = append(fs.objects, o)
			}
		}
	}
	fs.errs = errs
	return fs, errs
}

// byKey indexes a file's objects; nil-safe.
func (fs *fileState) byKey() map[objKey]object {
	m := map[objKey]object{}
	if fs != nil {
		for _, o := range fs.objects {
			m[o.key()] = o
		}
	}
	return m
}

// merge unions all files; the first file (by name) defining an object wins.
func (s *Source) merge() (map[objKey]object, []error) {
	names := make([]string, 0, len(s.files))
	for n := range s.files {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make(map[objKey]object, len(s.merged))
	var errs []error
	for _, n := range names {
		for _, o := range s.files[n].objects {
			k := o.key()
			if _, dup := out[k]; dup {
				errs = append(errs, &ObjectError{File: n, Obj: k.String(), Err: errors.New("defined more than once; the first definition (by file name, then position) is used")})
				continue
			}
			out[k] = o
		}
	}
	return out, errs
}

// publish tells the handler the difference between what it knows and next.
func (s *Source) publish(next map[objKey]object) {
	for k, old := range s.merged {
		if _, ok := next[k]; !ok {
			s.notify(old, object{})
		}
	}
	for k, cur := range next {
		old := s.merged[k]
		if !reflect.DeepEqual(old, cur) {
			s.notify(old, cur)
		}
		if cur.ign != nil && (old.ign == nil || old.ign.reason != cur.ign.reason) {
			s.log.Info("Ignoring object", logfields.Object, k.String(), logfields.Reason, cur.ign.reason)
		}
	}
	s.merged = next
}

func (s *Source) notify(prev, cur object) {
	if prev.svc != nil || cur.svc != nil {
		s.handler.OnServiceUpdate(prev.svc, cur.svc)
	}
	if prev.slice != nil || cur.slice != nil {
		s.handler.OnEndpointSliceUpdate(prev.slice, cur.slice)
	}
}

// Start begins watching the directory, loads it once (rejections are
// logged and kept in Errors), and then reloads in the background on every
// change (debounced) and every Rescan until ctx ends. The watch is in place
// before the first load, so no change is missed. It returns an error only
// when the directory cannot be read or watched.
func (s *Source) Start(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch manifests dir: %w", err)
	}
	if err := w.Add(s.dir); err != nil {
		w.Close()
		return fmt.Errorf("watch manifests dir %s: %w", s.dir, err)
	}
	if err := s.Load(); err != nil {
		var oe *ObjectError
		if !errors.As(err, &oe) {
			w.Close()
			return err
		}
	}
	go s.run(ctx, w)
	return nil
}

func (s *Source) run(ctx context.Context, w *fsnotify.Watcher) {
	defer w.Close()
	const debounce = 100 * time.Millisecond
	debounceT := time.NewTimer(time.Hour)
	debounceT.Stop()
	rescan := time.NewTicker(s.Rescan)
	defer rescan.Stop()
	changed, forceAll := map[string]bool{}, false
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-w.Events:
			if name := filepath.Base(ev.Name); isManifest(name) {
				changed[name] = true
				debounceT.Reset(debounce)
			}
		case err := <-w.Errors:
			s.log.Warn("Manifests watch error; re-reading every file", logfields.Error, err)
			forceAll = true
			debounceT.Reset(debounce)
		case <-debounceT.C:
			// Rejections are logged; every valid object is served.
			if forceAll {
				changed = nil
			}
			_ = s.load(changed)
			changed, forceAll = map[string]bool{}, false
		case <-rescan.C:
			_ = s.load(map[string]bool{})
		}
	}
}
