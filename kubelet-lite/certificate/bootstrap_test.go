package certificate

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

func bootstrapConfig(ca *testCA) *rest.Config {
	return &rest.Config{Host: "https://192.0.2.1:6443", TLSClientConfig: rest.TLSClientConfig{CAData: ca.pem()}}
}

// bootFixture is a node directory with no kubeconfig yet and a signer.
type bootFixture struct {
	ca         *testCA
	api        *fakeCSRs
	store      Store
	kubeconfig string
}

func newBootFixture(t *testing.T) *bootFixture {
	dir := t.TempDir()
	ca := newTestCA(t)
	return &bootFixture{ca: ca, api: newFakeCSRs(t, ca, time.Hour), store: Store{Dir: filepath.Join(dir, "pki")}, kubeconfig: filepath.Join(dir, "kubelet.conf")}
}

func (f *bootFixture) bootstrap(ctx context.Context) error {
	return Bootstrap(ctx, f.kubeconfig, bootstrapConfig(f.ca), f.api, f.store, "n1", quiet)
}

// TestBootstrapWritesKubeconfig: no kubeconfig yet, so a request is
// filed as the upstream kubelet files it, and once signed the pair is
// stored and a kubeconfig written that names it with the bootstrap's
// server and CA.
func TestBootstrapWritesKubeconfig(t *testing.T) {
	f := newBootFixture(t)
	ca, api, store, kubeconfig := f.ca, f.api, f.store, f.kubeconfig
	if err := f.bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	reqs := api.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	csr := reqs[0]
	if csr.Spec.SignerName != "kubernetes.io/kube-apiserver-client-kubelet" || !strings.HasPrefix(csr.Name, "node-csr-") {
		t.Errorf("request %s for signer %q", csr.Name, csr.Spec.SignerName)
	}
	if !slices.Equal(csr.Spec.Usages, []certificatesv1.KeyUsage{"digital signature", "client auth"}) {
		t.Errorf("usages %v", csr.Spec.Usages)
	}
	b, _ := pem.Decode(csr.Spec.Request)
	req, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if req.Subject.CommonName != "system:node:n1" || !slices.Equal(req.Subject.Organization, []string{"system:nodes"}) {
		t.Errorf("subject %v", req.Subject)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "https://192.0.2.1:6443" || string(cfg.CAData) != string(ca.pem()) || cfg.CertFile != store.CurrentPath() || cfg.KeyFile != store.CurrentPath() {
		t.Errorf("kubeconfig: host %s cert %s key %s, CA kept %v", cfg.Host, cfg.CertFile, cfg.KeyFile, string(cfg.CAData) == string(ca.pem()))
	}
	pair, err := store.Load()
	if err != nil || pair.Leaf.Subject.CommonName != "system:node:n1" {
		t.Fatalf("stored pair: %v", err)
	}
	if _, err := os.Stat(filepath.Join(store.Dir, bootstrapKeyName)); !os.IsNotExist(err) {
		t.Errorf("bootstrap key left behind: %v", err)
	}
	if fi, _ := os.Stat(store.CurrentPath()); fi.Mode().Perm() != 0o600 {
		t.Errorf("pair file mode %v, want 0600", fi.Mode().Perm())
	}

	// A second start finds a valid kubeconfig: nothing is requested.
	if err := f.bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(api.requests()); n != 1 {
		t.Errorf("%d requests after a restart with a valid certificate, want 1", n)
	}
}

// TestBootstrapRestartWaitsOnSameRequest: a kubelet restarted while its
// request is pending finds the same request (same key, same name)
// instead of filing another.
func TestBootstrapRestartWaitsOnSameRequest(t *testing.T) {
	f := newBootFixture(t)
	f.api.paused = true
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	err := f.bootstrap(ctx)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "kubectl certificate approve node-csr-") {
		t.Fatalf("pending request: %v", err)
	}
	f.api.paused = false
	if err := f.bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(f.api.requests()); n != 1 {
		t.Errorf("%d requests, want the first one reused", n)
	}
}

func TestBootstrapDenied(t *testing.T) {
	f := newBootFixture(t)
	f.api.deny = true
	kubeconfig := f.kubeconfig
	err := f.bootstrap(context.Background())
	if err == nil || !strings.Contains(err.Error(), "Denied: NotMyNode") {
		t.Fatalf("denied request: %v", err)
	}
	if _, err := os.Stat(kubeconfig); !os.IsNotExist(err) {
		t.Errorf("kubeconfig written for a denied request: %v", err)
	}
}

// TestBootstrapReplacesExpiredCertificate: a node that was off longer
// than its certificate's life bootstraps again; a kubeconfig that is not
// a kubeconfig is the operator's to fix, never overwritten.
func TestBootstrapReplacesExpiredCertificate(t *testing.T) {
	f := newBootFixture(t)
	ca, api, store, kubeconfig := f.ca, f.api, f.store, f.kubeconfig
	key, keyPEM, _ := newKey()
	certPEM := ca.sign(t, csrFor(t, key), time.Now().Add(-2*time.Hour), time.Hour)
	if _, err := store.Save(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	if err := writeKubeconfig(kubeconfig, bootstrapConfig(ca), store.CurrentPath()); err != nil {
		t.Fatal(err)
	}
	if err := f.bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	pair, _ := store.Load()
	if n := len(api.requests()); n != 1 || valid(pair, time.Now()) != nil {
		t.Errorf("%d requests, current pair valid: %v", n, valid(pair, time.Now()))
	}

	if err := os.WriteFile(kubeconfig, []byte("not: [a kubeconfig"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.bootstrap(context.Background()); err == nil {
		t.Error("a broken kubeconfig was overwritten")
	}
}

func csrFor(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: nodeSubject("n1")}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// TestIssuedForAnotherKeyIsRefused: a signer's answer for another key
// would break every later API call, so it is an error, not a new pair.
func TestIssuedForAnotherKeyIsRefused(t *testing.T) {
	ca := newTestCA(t)
	key, _, _ := newKey()
	other, _, _ := newKey()
	if _, err := checkIssued("csr-1", ca.sign(t, csrFor(t, other), time.Now(), time.Hour), key); err == nil {
		t.Error("a certificate for another key was accepted")
	}
	if _, err := checkIssued("csr-1", ca.sign(t, csrFor(t, key), time.Now(), time.Hour), key); err != nil {
		t.Error(err)
	}
}
