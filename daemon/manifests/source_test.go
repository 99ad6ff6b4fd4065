package manifests

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
)

// recorder keeps the current objects as a handler would see them.
type recorder struct {
	mu       sync.Mutex
	services map[lb.ServiceName]*lb.Service
	slices   map[string]*lb.EndpointSlice
	events   int
}

func newRecorder() *recorder {
	return &recorder{services: map[lb.ServiceName]*lb.Service{}, slices: map[string]*lb.EndpointSlice{}}
}

func (r *recorder) OnServiceUpdate(prev, cur *lb.Service) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events++
	if prev != nil {
		delete(r.services, prev.Name)
	}
	if cur != nil {
		r.services[cur.Name] = cur
	}
}

func (r *recorder) OnEndpointSliceUpdate(prev, cur *lb.EndpointSlice) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events++
	if prev != nil {
		delete(r.slices, prev.Key())
	}
	if cur != nil {
		r.slices[cur.Key()] = cur
	}
}

func (r *recorder) service(ns, name string) *lb.Service {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.services[lb.ServiceName{Namespace: ns, Name: name}]
}

func (r *recorder) count() (int, int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.services), len(r.slices), r.events
}

func svcYAML(name, ip string, port int) string {
	return `apiVersion: v1
kind: Service
metadata: {name: ` + name + `, namespace: shop}
spec:
  clusterIP: ` + ip + `
  ports: [{name: http, port: ` + strconv.Itoa(port) + `, protocol: TCP}]
`
}

const sliceYAML = `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: shop
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: [10.0.0.1]
`

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newTestSource(t *testing.T) (*Source, *recorder, string) {
	dir := t.TempDir()
	rec := newRecorder()
	return New(dir, rec, slog.New(slog.NewTextHandler(io.Discard, nil))), rec, dir
}

func TestLoadMultiDocumentAndOtherKinds(t *testing.T) {
	src, rec, dir := newTestSource(t)
	write(t, dir, "web.yaml", svcYAML("web", "10.96.0.10", 80)+"---\n# just a comment\n---\n"+sliceYAML+
		"---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n")
	write(t, dir, "notes.txt", "not a manifest")
	if err := src.Load(); err != nil {
		t.Fatal(err)
	}
	if s, e, _ := rec.count(); s != 1 || e != 1 {
		t.Fatalf("services=%d slices=%d, want 1 and 1", s, e)
	}
	if svc := rec.service("shop", "web"); svc == nil || svc.Ports[0].Port != 80 {
		t.Fatalf("service = %+v", svc)
	}
}

func TestLoadRejectsInvalidObjectsAndServesTheRest(t *testing.T) {
	src, rec, dir := newTestSource(t)
	write(t, dir, "good.yaml", svcYAML("web", "10.96.0.10", 80)+"---\n"+sliceYAML)
	write(t, dir, "bad.yaml", svcYAML("broken", "10.96.0.11", 70000)+"---\n"+svcYAML("fine", "10.96.0.12", 81))
	err := src.Load()
	if err == nil {
		t.Fatal("Load accepted a Service with port 70000")
	}
	for _, want := range []string{"bad.yaml", "Service shop/broken", "spec.ports[0].port", "70000"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if rec.service("shop", "web") == nil || rec.service("shop", "fine") == nil {
		t.Error("valid Services next to an invalid one were not served")
	}
	if rec.service("shop", "broken") != nil {
		t.Error("the invalid Service was served")
	}
}

func TestLoadKeepsLastValidVersion(t *testing.T) {
	src, rec, dir := newTestSource(t)
	write(t, dir, "web.yaml", svcYAML("web", "10.96.0.10", 80)+"---\n"+svcYAML("api", "10.96.0.11", 81))
	if err := src.Load(); err != nil {
		t.Fatal(err)
	}

	// An edit that breaks one object keeps its previous version.
	write(t, dir, "web.yaml", svcYAML("web", "10.96.0.10", 0)+"---\n"+svcYAML("api", "10.96.0.11", 82))
	if err := src.Load(); err == nil || !strings.Contains(err.Error(), "Service shop/web") {
		t.Fatalf("err = %v, want a rejection of Service shop/web", err)
	}
	if svc := rec.service("shop", "web"); svc == nil || svc.Ports[0].Port != 80 {
		t.Errorf("web = %+v, want the last valid version (port 80)", svc)
	}
	if svc := rec.service("shop", "api"); svc == nil || svc.Ports[0].Port != 82 {
		t.Errorf("api = %+v, want the valid edit (port 82)", svc)
	}

	// A document that cannot be parsed at all keeps everything the file had.
	write(t, dir, "web.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: [oops\n")
	if err := src.Load(); err == nil || !strings.Contains(err.Error(), "web.yaml: document 1") {
		t.Fatalf("err = %v, want a rejection of web.yaml document 1", err)
	}
	if rec.service("shop", "web") == nil || rec.service("shop", "api") == nil {
		t.Error("a broken document dropped Services")
	}

	// Unknown fields are errors, not silently dropped.
	write(t, dir, "web.yaml", strings.Replace(svcYAML("web", "10.96.0.10", 80), "ports:", "prots:", 1))
	if err := src.Load(); err == nil || !strings.Contains(err.Error(), `unknown field "prots"`) {
		t.Fatalf("err = %v, want it to name the unknown field", err)
	}

	// Removing the file removes its objects.
	if err := os.Remove(filepath.Join(dir, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := src.Load(); err != nil {
		t.Fatal(err)
	}
	if s, _, _ := rec.count(); s != 0 {
		t.Errorf("%d Services left after their file was removed", s)
	}
}

func TestLoadOnlyReportsChanges(t *testing.T) {
	src, rec, dir := newTestSource(t)
	write(t, dir, "web.yaml", svcYAML("web", "10.96.0.10", 80)+"---\n"+sliceYAML)
	if err := src.Load(); err != nil {
		t.Fatal(err)
	}
	_, _, before := rec.count()
	if err := src.Load(); err != nil {
		t.Fatal(err)
	}
	if _, _, after := rec.count(); after != before {
		t.Errorf("reloading unchanged files produced %d events", after-before)
	}
}

func TestDuplicateAcrossFiles(t *testing.T) {
	src, rec, dir := newTestSource(t)
	write(t, dir, "a.yaml", svcYAML("web", "10.96.0.10", 80))
	write(t, dir, "b.yaml", svcYAML("web", "10.96.0.10", 99))
	err := src.Load()
	if err == nil || !strings.Contains(err.Error(), "b.yaml: Service shop/web") {
		t.Fatalf("err = %v, want b.yaml's copy rejected", err)
	}
	if svc := rec.service("shop", "web"); svc == nil || svc.Ports[0].Port != 80 {
		t.Errorf("web = %+v, want a.yaml's version", svc)
	}
}

func TestRunWatchesTheDirectory(t *testing.T) {
	src, rec, dir := newTestSource(t)
	src.Rescan = time.Hour // only the watch can pick the change up
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := src.Start(ctx); err != nil {
		t.Fatal(err)
	}

	// Written the way editors and kubectl-style tools do: temp file, rename.
	tmp := filepath.Join(dir, ".web.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(svcYAML("web", "10.96.0.10", 80)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for rec.service("shop", "web") == nil {
		if time.Now().After(deadline) {
			t.Fatal("the new file was not picked up")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLoadJSONDocuments(t *testing.T) {
	src, rec, dir := newTestSource(t)
	write(t, dir, "web.json", `{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"shop"},
 "spec":{"clusterIP":"10.96.0.10","ports":[{"name":"http","port":80}]}}`)
	write(t, dir, "bad.json", `{"apiVersion":"v1","kind":"Service","metadata":{"name":"bad","namespace":"shop"},
 "spec":{"clusterIP":"10.96.0.11","ports":[{"name":"http","port":"eighty"}]}}`)
	err := src.Load()
	if err == nil || !strings.Contains(err.Error(), "bad.json: Service shop/bad") || !strings.Contains(err.Error(), "port") {
		t.Fatalf("err = %v, want bad.json's Service rejected for its port", err)
	}
	if svc := rec.service("shop", "web"); svc == nil || svc.Ports[0].Port != 80 {
		t.Fatalf("web = %+v", svc)
	}
}
