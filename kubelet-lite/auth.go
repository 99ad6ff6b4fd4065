package kubeletlite

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
)

// Authorization modes of the kubelet API, the upstream names.
const (
	AuthzAlwaysAllow = "AlwaysAllow"
	AuthzWebhook     = "Webhook"
)

// How long review answers are kept, the upstream kubelet's defaults.
const (
	tokenCacheTTL      = 2 * time.Minute
	allowedCacheTTL    = 5 * time.Minute
	disallowedCacheTTL = 30 * time.Second
)

// reviewer is the API server's TokenReview and SubjectAccessReview.
type reviewer interface {
	ReviewToken(context.Context, *authenticationv1.TokenReview) (*authenticationv1.TokenReview, error)
	ReviewAccess(context.Context, *authorizationv1.SubjectAccessReview) (*authorizationv1.SubjectAccessReview, error)
}

// apiUser is an authenticated caller of the kubelet API.
type apiUser struct {
	name, uid string
	groups    []string
	extra     map[string]authorizationv1.ExtraValue
}

type cached[T any] struct {
	v       T
	expires time.Time
}

// apiAuth authenticates kubelet API requests by client certificate (the
// TLS layer verified it against --client-ca-file) or, with token
// authentication on, by bearer token through TokenReview; and authorizes
// them as upstream: AlwaysAllow, or a SubjectAccessReview on the node
// resource with the subresource the path names (nodes/proxy for exec,
// attach, port-forward and logs).
type apiAuth struct {
	node    string
	tokens  bool   // bearer tokens through TokenReview
	anon    bool   // no credentials: system:anonymous
	mode    string // AuthzAlwaysAllow or AuthzWebhook
	reviews reviewer
	now     func() time.Time

	mu      sync.Mutex
	byToken map[[32]byte]cached[*apiUser] // guarded by mu; nil user: refused
	byCheck map[string]cached[bool]       // guarded by mu
}

func newAPIAuth(node string, tokens, anon bool, mode string, r reviewer) *apiAuth {
	return &apiAuth{node: node, tokens: tokens, anon: anon, mode: mode, reviews: r, now: time.Now,
		byToken: map[[32]byte]cached[*apiUser]{}, byCheck: map[string]cached[bool]{}}
}

func (a *apiAuth) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := a.authenticate(r)
		if err != nil {
			http.Error(w, "Unauthorized: "+err.Error(), http.StatusUnauthorized)
			return
		}
		verb, sub := attributes(r)
		ok, err := a.authorize(r.Context(), u, verb, sub)
		if err == nil && !ok && fineGrained[sub] {
			// Roles written before the fine-grained subresources grant
			// nodes/proxy, which upstream still accepts for these.
			ok, err = a.authorize(r.Context(), u, verb, "proxy")
		}
		if err != nil {
			http.Error(w, "authorization failed: "+err.Error(), http.StatusInternalServerError)
			return
		}
		if !ok {
			http.Error(w, fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=nodes, subresource=%s)", u.name, verb, sub), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *apiAuth) authenticate(r *http.Request) (*apiUser, error) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		c := r.TLS.VerifiedChains[0][0]
		return &apiUser{name: c.Subject.CommonName, groups: c.Subject.Organization}, nil
	}
	header := r.Header.Get("Authorization")
	if header == "" && a.anon {
		// As upstream: only a request that presents nothing is
		// anonymous; a bad token stays refused.
		return &apiUser{name: "system:anonymous", groups: []string{"system:unauthenticated"}}, nil
	}
	token, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || !a.tokens || token == "" {
		return nil, fmt.Errorf("a client certificate from the client CA%s is required", map[bool]string{true: " or a bearer token"}[a.tokens])
	}
	key := sha256.Sum256([]byte(token))
	a.mu.Lock()
	c, hit := a.byToken[key]
	a.mu.Unlock()
	if hit && a.now().Before(c.expires) {
		if c.v == nil {
			return nil, fmt.Errorf("the token was not accepted")
		}
		return c.v, nil
	}
	tr, err := a.reviews.ReviewToken(r.Context(), &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}})
	if err != nil {
		return nil, fmt.Errorf("token review: %w", err)
	}
	var u *apiUser
	if tr.Status.Authenticated {
		u = &apiUser{name: tr.Status.User.Username, uid: tr.Status.User.UID, groups: tr.Status.User.Groups, extra: map[string]authorizationv1.ExtraValue{}}
		for k, v := range tr.Status.User.Extra {
			u.extra[k] = authorizationv1.ExtraValue(v)
		}
	}
	a.mu.Lock()
	a.byToken[key] = cached[*apiUser]{u, a.now().Add(tokenCacheTTL)}
	a.mu.Unlock()
	if u == nil {
		return nil, fmt.Errorf("the token was not accepted")
	}
	return u, nil
}

// fineGrained are the subresources upstream checks before falling back
// to nodes/proxy.
var fineGrained = map[string]bool{"configz": true, "healthz": true, "pods": true}

// attributes are the verb and node subresource of a request, as the
// upstream kubelet names them.
func attributes(r *http.Request) (verb, sub string) {
	switch r.Method {
	case http.MethodPost:
		verb = "create"
	case http.MethodPut:
		verb = "update"
	case http.MethodPatch:
		verb = "patch"
	case http.MethodDelete:
		verb = "delete"
	default:
		verb = "get"
	}
	sub = "proxy"
	for prefix, s := range map[string]string{"/stats": "stats", "/metrics": "metrics", "/logs": "log", "/spec": "spec", "/checkpoint": "checkpoint", "/configz": "configz", "/healthz": "healthz", "/pods": "pods"} {
		if r.URL.Path == prefix || strings.HasPrefix(r.URL.Path, prefix+"/") {
			sub = s
		}
	}
	return verb, sub
}

func (a *apiAuth) authorize(ctx context.Context, u *apiUser, verb, sub string) (bool, error) {
	if a.mode != AuthzWebhook {
		return true, nil
	}
	key := fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%v\x00%v", u.name, u.uid, verb, sub, u.groups, u.extra)
	a.mu.Lock()
	c, hit := a.byCheck[key]
	a.mu.Unlock()
	if hit && a.now().Before(c.expires) {
		return c.v, nil
	}
	sar, err := a.reviews.ReviewAccess(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: u.name, UID: u.uid, Groups: u.groups, Extra: u.extra,
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Version: "v1", Resource: "nodes", Subresource: sub, Name: a.node}}})
	if err != nil {
		return false, fmt.Errorf("subject access review: %w", err)
	}
	ttl := disallowedCacheTTL
	if sar.Status.Allowed {
		ttl = allowedCacheTTL
	}
	a.mu.Lock()
	a.byCheck[key] = cached[bool]{sar.Status.Allowed, a.now().Add(ttl)}
	a.mu.Unlock()
	return sar.Status.Allowed, nil
}
