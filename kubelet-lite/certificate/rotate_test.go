package certificate

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

func TestDeadlineIsSeventyToNinetyPercent(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	na := nb.Add(100 * time.Hour)
	for _, tc := range []struct {
		jitter float64
		want   time.Duration
	}{{0, 70 * time.Hour}, {0.5, 80 * time.Hour}, {0.999999, 90 * time.Hour}} {
		got := deadline(nb, na, tc.jitter).Sub(nb)
		if d := got - tc.want; d < -time.Second || d > time.Second {
			t.Errorf("jitter %v: rotate after %v, want %v", tc.jitter, got, tc.want)
		}
	}
}

// TestRotationSwitchesConnections: a server that records which client
// certificate each request came with sees the first pair, then, after a
// rotation, only the new one: connections made with the old pair are
// closed, because the API server authenticates a connection only once.
func TestRotationSwitchesConnections(t *testing.T) {
	ca := newTestCA(t)
	var mu sync.Mutex
	var serials []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		serials = append(serials, r.TLS.PeerCertificates[0].SerialNumber.String())
		mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	defer srv.Close()

	store := Store{Dir: filepath.Join(t.TempDir(), "pki")}
	key, keyPEM, _ := newKey()
	first, err := parsePair(ca.sign(t, csrFor(t, key), time.Now().Add(-time.Minute), time.Hour), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRotator(store, "n1", first, quiet)
	if err != nil {
		t.Fatal(err)
	}
	r.API = newFakeCSRs(t, ca, time.Hour)
	cfg, err := r.RESTConfig(&rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{Insecure: true}})
	if err != nil {
		t.Fatal(err)
	}
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	get := func() {
		t.Helper()
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	get()
	get()
	if err := r.rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	get()
	get()
	mu.Lock()
	defer mu.Unlock()
	old, cur := first.Leaf.SerialNumber.String(), r.Current().Leaf.SerialNumber.String()
	if old == cur {
		t.Fatal("rotation kept the serial number")
	}
	want := []string{old, old, cur, cur}
	for i := range want {
		if i >= len(serials) || serials[i] != want[i] {
			t.Fatalf("requests came with serials %v, want %v", serials, want)
		}
	}
	stored, err := store.Load()
	if err != nil || stored.Leaf.SerialNumber.String() != cur {
		t.Errorf("store holds %v (%v), want the new pair", stored, err)
	}
}

// TestRotatorRunRenewsBeforeExpiry runs the loop on a certificate of a
// few seconds' life: a new one is in use before the first expires, and a
// restarted rotator starts from the store's newest pair, not the
// kubeconfig's old one.
func TestRotatorRunRenewsBeforeExpiry(t *testing.T) {
	ca := newTestCA(t)
	store := Store{Dir: filepath.Join(t.TempDir(), "pki")}
	key, keyPEM, _ := newKey()
	first, _ := parsePair(ca.sign(t, csrFor(t, key), time.Now(), 2*time.Second), keyPEM)
	r, err := NewRotator(store, "n1", first, quiet)
	if err != nil {
		t.Fatal(err)
	}
	api := newFakeCSRs(t, ca, time.Hour)
	r.API = api
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	deadline := time.Now().Add(first.Leaf.NotAfter.Sub(time.Now()))
	for r.Current() == first {
		if time.Now().After(deadline) {
			t.Fatal("the certificate expired before it was rotated")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if reqs := api.requests(); len(reqs) != 1 || reqs[0].GenerateName != "csr-" {
		t.Errorf("rotation requests %d, want one with generateName csr-", len(reqs))
	}
	again, err := NewRotator(store, "n1", first, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if again.Current().Leaf.SerialNumber.Cmp(r.Current().Leaf.SerialNumber) != 0 {
		t.Error("a restarted rotator went back to the kubeconfig's pair")
	}
}

// TestRotationFallsBackToBootstrap: once the node's own certificate has
// expired, the bootstrap credentials file the request.
func TestRotationFallsBackToBootstrap(t *testing.T) {
	ca := newTestCA(t)
	store := Store{Dir: filepath.Join(t.TempDir(), "pki")}
	key, keyPEM, _ := newKey()
	expired, _ := parsePair(ca.sign(t, csrFor(t, key), time.Now().Add(-2*time.Hour), time.Hour), keyPEM)
	r, err := NewRotator(store, "n1", expired, quiet)
	if err != nil {
		t.Fatal(err)
	}
	own, boot := newFakeCSRs(t, ca, time.Hour), newFakeCSRs(t, ca, time.Hour)
	r.API, r.Bootstrap = own, boot
	if err := r.rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(own.requests()) != 0 || len(boot.requests()) != 1 {
		t.Errorf("requests: %d with the expired credentials, %d with the bootstrap ones", len(own.requests()), len(boot.requests()))
	}
}

func TestNewRotatorNeedsACertificate(t *testing.T) {
	if _, err := NewRotator(Store{Dir: t.TempDir()}, "n1", nil, quiet); err == nil {
		t.Error("no error without any certificate")
	}
}
