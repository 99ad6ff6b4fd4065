package certificate

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SignerName is the signer of kubelet client certificates, which the
// controller manager's approver and signer act on.
const SignerName = certificatesv1.KubeAPIServerClientKubeletSignerName

// CSRClient is the part of the certificates.k8s.io API a request needs.
type CSRClient interface {
	Create(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, opts metav1.CreateOptions) (*certificatesv1.CertificateSigningRequest, error)
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*certificatesv1.CertificateSigningRequest, error)
}

// pollInterval is how often a pending request is looked at: approval is
// a controller's (or a person's) job, seconds at best.
var pollInterval = time.Second

// newKey makes the private key of a new pair: ECDSA P-256, as the
// upstream kubelet's.
func newKey() (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate client key: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode client key: %w", err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// parseKey reads a key newKey wrote.
func parseKey(keyPEM []byte) (*ecdsa.PrivateKey, error) {
	b, _ := pem.Decode(keyPEM)
	if b == nil || b.Type != "EC PRIVATE KEY" {
		return nil, errors.New("parse client key: no EC PRIVATE KEY block")
	}
	return x509.ParseECPrivateKey(b.Bytes)
}

// nodeSubject is who a kubelet client certificate names: the Node
// authorizer and NodeRestriction recognise the node by it.
func nodeSubject(node string) pkix.Name {
	return pkix.Name{CommonName: "system:node:" + node, Organization: []string{"system:nodes"}}
}

// request asks the API server for a certificate for key, named for node,
// and waits until it is issued. name is the request's name; empty lets
// the API server pick one. A request that is denied or fails is an
// error; one that already exists (a retry after a restart, with the same
// key and so the same name) is waited on.
func request(ctx context.Context, api CSRClient, name, node string, key crypto.Signer) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: nodeSubject(node)}, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate request: %w", err)
	}
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	csr := &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request: csrPEM, SignerName: SignerName,
			Usages: []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth},
		},
	}
	if name == "" {
		csr.GenerateName = "csr-"
	}
	created, err := api.Create(ctx, csr, metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err) && name != "":
		if created, err = api.Get(ctx, name, metav1.GetOptions{}); err != nil {
			return nil, fmt.Errorf("read certificate request %s: %w", name, err)
		}
		if !bytes.Equal(created.Spec.Request, csrPEM) && !sameKey(created.Spec.Request, key) {
			return nil, fmt.Errorf("certificate request %s exists for another key: delete it (kubectl delete csr %s)", name, name)
		}
	case err != nil:
		return nil, fmt.Errorf("create certificate request: %w", err)
	}
	return wait(ctx, api, created.Name, key)
}

// sameKey says whether the request in csrPEM is for key.
func sameKey(csrPEM []byte, key crypto.Signer) bool {
	b, _ := pem.Decode(csrPEM)
	if b == nil {
		return false
	}
	req, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return false
	}
	pub, ok := req.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(key.Public())
}

// wait polls the request until it carries a certificate for key.
func wait(ctx context.Context, api CSRClient, name string, key crypto.Signer) ([]byte, error) {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		csr, err := api.Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			for _, c := range csr.Status.Conditions {
				if (c.Type == certificatesv1.CertificateDenied || c.Type == certificatesv1.CertificateFailed) && c.Status != "False" {
					return nil, fmt.Errorf("certificate request %s %s: %s: %s", name, c.Type, c.Reason, c.Message)
				}
			}
			if len(csr.Status.Certificate) > 0 {
				return checkIssued(name, csr.Status.Certificate, key)
			}
		} else if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("certificate request %s was deleted before it was signed", name)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for certificate request %s to be approved and signed: %w", name, ctx.Err())
		case <-tick.C:
		}
	}
}

// checkIssued makes sure the signer returned a certificate for our key:
// one for another key would make every later API call fail.
func checkIssued(name string, certPEM []byte, key crypto.Signer) ([]byte, error) {
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("certificate request %s: the issued certificate is not PEM", name)
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certificate request %s: parse issued certificate: %w", name, err)
	}
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("certificate request %s: the issued certificate is for another key", name)
	}
	return certPEM, nil
}

// bootstrapName is the request name for a bootstrap key: derived from
// the key and node, so a kubelet restarted while it waits finds its own
// request instead of filing another.
func bootstrapName(node string, key *ecdsa.PrivateKey) (string, error) {
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return "", fmt.Errorf("encode client key: %w", err)
	}
	sum := sha256.Sum256(append(append([]byte(node), 0), pub...))
	return "node-csr-" + base64.RawURLEncoding.EncodeToString(sum[:]), nil
}
