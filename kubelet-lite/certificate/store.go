// Package certificate keeps kubelet-lite's client certificate for the API
// server, as the upstream kubelet does with rotateCertificates and
// --bootstrap-kubeconfig: a first certificate requested with bootstrap
// credentials (TLS bootstrapping), then a new key and certificate requested
// with the node's own before the current one expires, each through a
// CertificateSigningRequest for the kubernetes.io/kube-apiserver-client-kubelet
// signer. The pair lives in <cert-dir>/kubelet-client-current.pem, the
// path the kubeconfig names, so a restarted kubelet (or the upstream one)
// finds it.
package certificate

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

const (
	// currentName is the link to the pair in use, upstream's name.
	currentName = "kubelet-client-current.pem"
	// pairPrefix starts every stored pair's file name; a timestamp
	// follows, so names sort by age.
	pairPrefix = "kubelet-client-"
	// keepPairs is how many pairs stay on disk: the current one and the
	// one before, for an operator who needs to look back.
	keepPairs = 2
)

// Store is the directory that holds the certificate and key pairs
// (--cert-dir).
type Store struct{ Dir string }

// CurrentPath is the file a kubeconfig names for both client-certificate
// and client-key.
func (s Store) CurrentPath() string { return filepath.Join(s.Dir, currentName) }

// Load reads the pair in use. A missing one is os.ErrNotExist.
func (s Store) Load() (*tls.Certificate, error) {
	raw, err := os.ReadFile(s.CurrentPath())
	if err != nil {
		return nil, err
	}
	return parsePair(raw, raw)
}

// Save writes a new pair and points the current link at it: the link is
// swapped by rename, so a reader (this kubelet after a crash, or client-go
// reloading the kubeconfig's files) sees the old pair or the new one,
// never half of each.
func (s Store) Save(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	pair, err := parsePair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create certificate directory: %w", err)
	}
	name := pairPrefix + time.Now().UTC().Format("2006-01-02-15-04-05.000000000") + ".pem"
	file := filepath.Join(s.Dir, name)
	data := append(append([]byte{}, certPEM...), keyPEM...)
	if err := os.WriteFile(file, data, 0o600); err != nil {
		return nil, fmt.Errorf("write certificate: %w", err)
	}
	tmp := s.CurrentPath() + ".tmp"
	_ = os.Remove(tmp)
	if err := os.Symlink(name, tmp); err != nil {
		return nil, fmt.Errorf("link new certificate: %w", err)
	}
	if err := os.Rename(tmp, s.CurrentPath()); err != nil {
		return nil, fmt.Errorf("link new certificate: %w", err)
	}
	s.prune()
	return pair, nil
}

// prune removes all but the newest keepPairs pairs.
func (s Store) prune() {
	ents, err := os.ReadDir(s.Dir)
	if err != nil {
		return
	}
	var pairs []string
	for _, e := range ents {
		n := e.Name()
		if e.Type().IsRegular() && strings.HasPrefix(n, pairPrefix) && strings.HasSuffix(n, ".pem") && n != currentName {
			pairs = append(pairs, n)
		}
	}
	slices.Sort(pairs)
	for len(pairs) > keepPairs {
		_ = os.Remove(filepath.Join(s.Dir, pairs[0]))
		pairs = pairs[1:]
	}
}

// parsePair checks that the certificate and key belong together and
// fills in the parsed leaf.
func parsePair(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("parse client certificate: %w", err)
	}
	if pair.Leaf == nil {
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("parse client certificate: %w", err)
		}
	}
	return &pair, nil
}

// errExpired marks a pair whose certificate is no longer (or not yet)
// valid.
var errExpired = errors.New("client certificate is not valid now")

// valid says whether pair's certificate is within its validity period.
func valid(pair *tls.Certificate, now time.Time) error {
	if pair == nil || pair.Leaf == nil {
		return errExpired
	}
	if now.Before(pair.Leaf.NotBefore) || !now.Before(pair.Leaf.NotAfter) {
		return fmt.Errorf("%w: valid from %s to %s", errExpired, pair.Leaf.NotBefore.UTC().Format(time.RFC3339), pair.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}
