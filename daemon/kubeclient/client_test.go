package kubeclient

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/rest"
)

// TestCompression asks a server what the client's transport sends: gzip
// only when asked for and the kubeconfig does not forbid it. The server
// speaks TLS, as API servers do: for plain HTTP client-go hands out Go's
// default transport, which always asks for gzip.
func TestCompression(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Accept-Encoding")
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name          string
		compress      bool
		kubeconfigOff bool // disable-compression: true in the kubeconfig
		want          string
	}{
		{"default", false, false, ""},
		{"asked for", true, false, "gzip"},
		{"kubeconfig forbids", true, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Config(writeKubeconfig(t, srv.URL, tc.kubeconfigOff), "test", tc.compress, "")
			if err != nil {
				t.Fatal(err)
			}
			c, err := rest.HTTPClientFor(cfg)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if enc := <-got; enc != tc.want {
				t.Errorf("Accept-Encoding %q, want %q", enc, tc.want)
			}
		})
	}
}

func TestConfigBadKubeconfig(t *testing.T) {
	_, err := Config(filepath.Join(t.TempDir(), "missing"), "test", false, "")
	if err == nil {
		t.Fatal("no error for a missing kubeconfig")
	}
}

func writeKubeconfig(t *testing.T, server string, disableCompression bool) string {
	t.Helper()
	extra := ""
	if disableCompression {
		extra = "    disable-compression: true\n"
	}
	s := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: " + server + "\n    insecure-skip-tls-verify: true\n" + extra +
		"contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user: {}\n"
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
