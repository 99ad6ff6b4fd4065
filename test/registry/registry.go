// Package registry is a pull-only OCI distribution registry for tests:
// images held in memory, served over plain HTTP on loopback, behind
// basic authentication when credentials are set, counting the manifest
// requests so a test can tell whether a pull happened.
package registry

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/hivelet/hivelet/test/images"
)

// Registry serves the images it was given; see New.
type Registry struct {
	user, password string

	mu        sync.Mutex
	manifests map[string]*images.Image // "name:tag" and "name@digest"
	blobs     map[string][]byte
	resolves  map[string]int // manifest requests by "name:tag", authorized ones only
	denied    int
}

// New returns an empty registry; with a user, every request needs that
// user and password (HTTP basic, as registries behind a login do).
func New(user, password string) *Registry {
	return &Registry{user: user, password: password, manifests: map[string]*images.Image{},
		blobs: map[string][]byte{}, resolves: map[string]int{}}
}

// Push stores img as name:tag (name as in "team/app").
func (r *Registry) Push(name, tag string, img *images.Image) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.manifests[name+":"+tag] = img
	r.manifests[name+"@"+img.ManifestDigest] = img
	for d, b := range img.Blobs {
		r.blobs[d] = b
	}
}

// Resolves is how many authorized manifest requests name:tag has had.
func (r *Registry) Resolves(ref string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resolves[ref]
}

// Denied is how many requests were refused for their credentials.
func (r *Registry) Denied() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.denied
}

// Serve answers the registry API on ln until it is closed.
func (r *Registry) Serve(ln net.Listener) {
	_ = http.Serve(ln, r)
}

func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		http.Error(w, "this registry only serves pulls", http.StatusMethodNotAllowed)
		return
	}
	if r.user != "" {
		if u, p, ok := req.BasicAuth(); !ok || u != r.user || p != r.password {
			r.mu.Lock()
			r.denied++
			r.mu.Unlock()
			w.Header().Set("WWW-Authenticate", `Basic realm="hivelet-test"`)
			apiError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
			return
		}
	}
	path, ok := strings.CutPrefix(req.URL.Path, "/v2/")
	switch {
	case !ok:
		apiError(w, http.StatusNotFound, "NOT_FOUND", "not a registry path")
	case path == "":
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		w.WriteHeader(http.StatusOK)
	case strings.Contains(path, "/manifests/"):
		name, ref, _ := cut(path, "/manifests/")
		r.manifest(w, req, name, ref)
	case strings.Contains(path, "/blobs/"):
		_, d, _ := cut(path, "/blobs/")
		r.mu.Lock()
		b, found := r.blobs[d]
		r.mu.Unlock()
		if !found {
			apiError(w, http.StatusNotFound, "BLOB_UNKNOWN", "blob unknown: "+d)
			return
		}
		send(w, req, "application/octet-stream", d, b)
	default:
		apiError(w, http.StatusNotFound, "NOT_FOUND", "unknown path "+req.URL.Path)
	}
}

func (r *Registry) manifest(w http.ResponseWriter, req *http.Request, name, ref string) {
	key := name + ":" + ref
	if strings.HasPrefix(ref, "sha256:") {
		key = name + "@" + ref
	}
	r.mu.Lock()
	img, found := r.manifests[key]
	if found && !strings.HasPrefix(ref, "sha256:") {
		r.resolves[key]++
	}
	r.mu.Unlock()
	if !found {
		apiError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown: "+key)
		return
	}
	send(w, req, images.ManifestType, img.ManifestDigest, img.Manifest)
}

// cut splits at the last sep: repository names may hold slashes.
func cut(s, sep string) (string, string, bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

func send(w http.ResponseWriter, req *http.Request, mediaType, digest string, b []byte) {
	w.Header().Set("Content-Type", mediaType)
	w.Header().Set("Docker-Content-Digest", digest)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if req.Method == http.MethodGet {
		_, _ = w.Write(b)
	}
}

// apiError answers in the distribution spec's error format.
func apiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"errors":[{"code":%q,"message":%q}]}`, code, msg)
}
