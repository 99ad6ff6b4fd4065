package kubeletlite

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
)

// fakeReviews answers as an API server with one token and one rule.
type fakeReviews struct {
	tokens, access int
	lastSAR        *authorizationv1.SubjectAccessReviewSpec
}

func (f *fakeReviews) ReviewToken(_ context.Context, tr *authenticationv1.TokenReview) (*authenticationv1.TokenReview, error) {
	f.tokens++
	if tr.Spec.Token == "good" {
		tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: "system:serviceaccount:ns:viewer", Groups: []string{"system:serviceaccounts"}}}
	}
	return tr, nil
}

func (f *fakeReviews) ReviewAccess(_ context.Context, sar *authorizationv1.SubjectAccessReview) (*authorizationv1.SubjectAccessReview, error) {
	f.access++
	f.lastSAR = &sar.Spec
	ra := sar.Spec.ResourceAttributes
	// The API server's kubelet client may do everything; the viewer may
	// only read nodes/proxy.
	sar.Status.Allowed = sar.Spec.User == "kube-apiserver-kubelet-client" ||
		sar.Spec.User == "system:serviceaccount:ns:viewer" && ra.Verb == "get" && ra.Subresource == "proxy"
	return sar, nil
}

func TestKubeletAPIAuth(t *testing.T) {
	f := &fakeReviews{}
	a := newAPIAuth("node-1", true, false, AuthzWebhook, f)
	now := time.Now()
	a.now = func() time.Time { return now }
	h := a.wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	do := func(method, path, token string, cn string) int {
		r := httptest.NewRequest(method, path, nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		if cn != "" {
			r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{Subject: pkix.Name{CommonName: cn, Organization: []string{"system:masters"}}}}}}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for _, tc := range []struct {
		method, path, token, cn string
		want                    int
	}{
		{"GET", "/containerLogs/ns/p/c", "", "", 401},
		{"GET", "/containerLogs/ns/p/c", "bad", "", 401},
		{"GET", "/containerLogs/ns/p/c", "good", "", 200},
		{"POST", "/exec/ns/p/c", "good", "", 403}, // create on nodes/proxy: not the viewer's
		{"POST", "/exec/ns/p/c", "", "kube-apiserver-kubelet-client", 200},
		{"GET", "/stats/summary", "good", "", 403},
		{"GET", "/healthz", "good", "", 200}, // nodes/healthz denied, nodes/proxy allowed
	} {
		if got := do(tc.method, tc.path, tc.token, tc.cn); got != tc.want {
			t.Errorf("%s %s token=%q cert=%q: %d, want %d", tc.method, tc.path, tc.token, tc.cn, got, tc.want)
		}
	}
	if ra := f.lastSAR.ResourceAttributes; ra.Resource != "nodes" || ra.Name != "node-1" {
		t.Errorf("SAR attributes %+v", ra)
	}
	// Answers are cached: the same requests again ask nothing.
	tokens, access := f.tokens, f.access
	do("GET", "/containerLogs/ns/p/c", "good", "")
	do("GET", "/containerLogs/ns/p/c", "bad", "")
	if f.tokens != tokens || f.access != access {
		t.Errorf("cached answers asked again: %d→%d token, %d→%d access reviews", tokens, f.tokens, access, f.access)
	}
	now = now.Add(tokenCacheTTL + time.Second)
	do("GET", "/containerLogs/ns/p/c", "good", "")
	if f.tokens == tokens {
		t.Error("an expired token review was not asked again")
	}
	// AlwaysAllow without token authentication: certificates only.
	a = newAPIAuth("node-1", false, false, AuthzAlwaysAllow, nil)
	h = a.wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	if got := do("POST", "/exec/ns/p/c", "good", ""); got != 401 {
		t.Errorf("a token without token authentication: %d", got)
	}
	if got := do("POST", "/exec/ns/p/c", "", "anyone"); got != 200 {
		t.Errorf("a certificate with AlwaysAllow: %d", got)
	}
	if got := do("GET", "/healthz", "", ""); got != 401 {
		t.Errorf("no credentials, anonymous off: %d", got)
	}
}

// TestKubeletAPIAnonymous: with --anonymous-auth a request with no
// credentials is system:anonymous and the authorizer judges it; one
// with a bad token is still refused.
func TestKubeletAPIAnonymous(t *testing.T) {
	f := &fakeReviews{}
	a := newAPIAuth("node-1", true, true, AuthzWebhook, f)
	h := a.wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	do := func(token string) int {
		r := httptest.NewRequest("GET", "/pods", nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	if got := do(""); got != 403 {
		t.Errorf("anonymous under Webhook: %d, want 403 (the fake grants system:anonymous nothing)", got)
	}
	if f.lastSAR == nil || f.lastSAR.User != "system:anonymous" || len(f.lastSAR.Groups) != 1 || f.lastSAR.Groups[0] != "system:unauthenticated" {
		t.Errorf("SAR for an anonymous request: %+v", f.lastSAR)
	}
	if got := do("bad"); got != 401 {
		t.Errorf("a bad token with anonymous on: %d, want 401", got)
	}
	a = newAPIAuth("node-1", false, true, AuthzAlwaysAllow, nil)
	h = a.wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	if got := do(""); got != 200 {
		t.Errorf("anonymous under AlwaysAllow: %d, want 200", got)
	}
}
