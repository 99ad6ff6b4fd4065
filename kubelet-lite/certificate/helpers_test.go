package certificate

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"sync"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testCA signs certificates as the controller manager's signer would.
type testCA struct {
	cert *x509.Certificate
	der  []byte
	key  *ecdsa.PrivateKey
	next int64
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, der: der, key: key, next: 2}
}

func (ca *testCA) pem() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.der})
}

// sign issues a certificate for the request in csrPEM, valid from
// notBefore for life.
func (ca *testCA) sign(t testing.TB, csrPEM []byte, notBefore time.Time, life time.Duration) []byte {
	t.Helper()
	b, _ := pem.Decode(csrPEM)
	req, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ca.next++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.next), Subject: req.Subject, NotBefore: notBefore, NotAfter: notBefore.Add(life),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, req.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// fakeCSRs is the certificates API with an approver that acts on every
// request as decide says.
type fakeCSRs struct {
	t      testing.TB
	ca     *testCA
	life   time.Duration
	deny   bool
	mu     sync.Mutex
	csrs   map[string]*certificatesv1.CertificateSigningRequest
	order  []string
	n      int
	paused bool // leave requests pending
}

func newFakeCSRs(t testing.TB, ca *testCA, life time.Duration) *fakeCSRs {
	return &fakeCSRs{t: t, ca: ca, life: life, csrs: map[string]*certificatesv1.CertificateSigningRequest{}}
}

func (f *fakeCSRs) Create(_ context.Context, csr *certificatesv1.CertificateSigningRequest, _ metav1.CreateOptions) (*certificatesv1.CertificateSigningRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := csr.DeepCopy()
	if c.Name == "" {
		f.n++
		c.Name = fmt.Sprintf("%s%d", c.GenerateName, f.n)
	}
	if _, ok := f.csrs[c.Name]; ok {
		return nil, apierrors.NewAlreadyExists(schema.GroupResource{Group: "certificates.k8s.io", Resource: "certificatesigningrequests"}, c.Name)
	}
	f.csrs[c.Name] = c
	f.order = append(f.order, c.Name)
	return c.DeepCopy(), nil
}

func (f *fakeCSRs) Get(_ context.Context, name string, _ metav1.GetOptions) (*certificatesv1.CertificateSigningRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.csrs[name]
	if !ok {
		return nil, apierrors.NewNotFound(schema.GroupResource{Group: "certificates.k8s.io", Resource: "certificatesigningrequests"}, name)
	}
	switch {
	case f.paused || len(c.Status.Conditions) > 0:
	case f.deny:
		c.Status.Conditions = append(c.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type: certificatesv1.CertificateDenied, Status: "True", Reason: "NotMyNode", Message: "no"})
	default:
		c.Status.Conditions = append(c.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{Type: certificatesv1.CertificateApproved, Status: "True"})
		c.Status.Certificate = f.ca.sign(f.t, c.Spec.Request, time.Now().Add(-time.Second), f.life)
	}
	return c.DeepCopy(), nil
}

// requests returns the requests filed, oldest first.
func (f *fakeCSRs) requests() []*certificatesv1.CertificateSigningRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*certificatesv1.CertificateSigningRequest
	for _, n := range f.order {
		out = append(out, f.csrs[n].DeepCopy())
	}
	return out
}

func init() { pollInterval = 10 * time.Millisecond }
