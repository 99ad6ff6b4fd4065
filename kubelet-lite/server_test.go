package kubeletlite

import (
	"crypto/x509"
	"encoding/pem"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServingCert(t *testing.T) {
	c, err := servingCert(Config{NodeName: "node-1"})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil || leaf.DNSNames[0] != "node-1" {
		t.Fatalf("self-signed: %v %v", leaf, err)
	}
	dir := t.TempDir()
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	crt, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := servingCert(Config{NodeName: "other", TLSCertFile: crt, TLSPrivateKeyFile: key})
	if err != nil || string(got.Certificate[0]) != string(c.Certificate[0]) {
		t.Errorf("from files: %v", err)
	}
	if _, err := servingCert(Config{TLSCertFile: crt}); err == nil || !strings.Contains(err.Error(), "--tls-private-key-file") {
		t.Errorf("a certificate without its key: %v", err)
	}
}

func TestStreamsFromTheAPIServersQuery(t *testing.T) {
	for q, want := range map[string]streamOpts{
		"input=1&output=1&error=1": {stdin: true, stdout: true, stderr: true},
		"output=1&error=1&tty=1":   {stdout: true, tty: true}, // a TTY has no separate stderr
		"output=true":              {stdout: true},
	} {
		v, _ := url.ParseQuery(q)
		if got, err := streams(v); err != nil || got != want {
			t.Errorf("%s: %+v %v", q, got, err)
		}
	}
	v, _ := url.ParseQuery("stdin=1&stdout=1") // not the names the API server uses
	if _, err := streams(v); err == nil {
		t.Error("no stream asked for, yet accepted")
	}
}
