package kubeapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// request is what the fake API server saw.
type request struct{ method, path, query, body string }

// fakeAPI answers every request with reply (JSON) and records it.
func fakeAPI(t *testing.T, reply func(r *http.Request) any) (*Client, func() []request) {
	t.Helper()
	var mu sync.Mutex
	var seen []request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, request{r.Method, r.URL.Path, r.URL.RawQuery, string(body)})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(reply(r))
	}))
	t.Cleanup(srv.Close)
	c, err := New(&rest.Config{Host: srv.URL, ContentConfig: rest.ContentConfig{ContentType: "application/json"}})
	if err != nil {
		t.Fatal(err)
	}
	return c, func() []request { mu.Lock(); defer mu.Unlock(); return append([]request(nil), seen...) }
}

func TestRequestsReachTheRightPaths(t *testing.T) {
	c, seen := fakeAPI(t, func(r *http.Request) any {
		switch {
		case strings.Contains(r.URL.Path, "/leases/"):
			return coordinationv1.Lease{TypeMeta: metav1.TypeMeta{APIVersion: "coordination.k8s.io/v1", Kind: "Lease"}, ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
		case strings.HasSuffix(r.URL.Path, "/token"):
			return authenticationv1.TokenRequest{TypeMeta: metav1.TypeMeta{APIVersion: "authentication.k8s.io/v1", Kind: "TokenRequest"},
				Status: authenticationv1.TokenRequestStatus{Token: "tok"}}
		case r.Method == http.MethodDelete:
			return metav1.Status{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: metav1.StatusSuccess}
		case strings.HasSuffix(r.URL.Path, "/pods"):
			return corev1.PodList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PodList"}, Items: []corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "a"}}}}
		}
		return corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"}}
	})
	ctx := context.Background()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"}}
	if got, err := c.CoreV1().Pods("ns").Get(ctx, "web", metav1.GetOptions{}); err != nil || got.Name != "web" {
		t.Fatalf("get: %v %v", got, err)
	}
	if _, err := c.CoreV1().Pods("ns").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.CoreV1().Pods("ns").Delete(ctx, "web", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	list := &corev1.PodList{}
	if err := c.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=n1"}, list); err != nil || len(list.Items) != 1 {
		t.Fatalf("list: %+v %v", list, err)
	}
	if _, err := c.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if l, err := c.CoordinationV1().Leases("kube-node-lease").Update(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, metav1.UpdateOptions{}); err != nil || l.Name != "n1" {
		t.Fatalf("lease: %v %v", l, err)
	}
	tr, err := c.CoreV1().ServiceAccounts("ns").CreateToken(ctx, "default", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil || tr.Status.Token != "tok" {
		t.Fatalf("token: %v %v", tr, err)
	}

	want := []request{
		{method: "GET", path: "/api/v1/namespaces/ns/pods/web"},
		{method: "PUT", path: "/api/v1/namespaces/ns/pods/web/status"},
		{method: "DELETE", path: "/api/v1/namespaces/ns/pods/web"},
		{method: "GET", path: "/api/v1/pods", query: "fieldSelector=spec.nodeName%3Dn1"},
		{method: "GET", path: "/api/v1/nodes/n1"},
		{method: "PUT", path: "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1"},
		{method: "POST", path: "/api/v1/namespaces/ns/serviceaccounts/default/token"},
	}
	got := seen()
	if len(got) != len(want) {
		t.Fatalf("%d requests, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].method != w.method || got[i].path != w.path || w.query != "" && got[i].query != w.query {
			t.Errorf("request %d: %s %s?%s, want %s %s?%s", i, got[i].method, got[i].path, got[i].query, w.method, w.path, w.query)
		}
	}
	if !strings.Contains(got[2].body, `"gracePeriodSeconds":0`) {
		t.Errorf("delete options not sent: %s", got[2].body)
	}
	if !strings.Contains(got[6].body, `"kind":"TokenRequest"`) || !strings.Contains(got[6].body, `"apiVersion":"authentication.k8s.io/v1"`) {
		t.Errorf("token request body: %s", got[6].body)
	}
}
