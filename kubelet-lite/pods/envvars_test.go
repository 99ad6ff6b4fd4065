package pods

import (
	"context"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// envObjects answers for one ConfigMap, one Secret and one Service.
func envObjects(r *http.Request, _ []byte) any {
	switch {
	case strings.HasSuffix(r.URL.Path, "/configmaps/cm"):
		return corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			Data: map[string]string{"data-1": "value-1", "data.2": "value-2", "bad=key": "x"}}
	case strings.HasSuffix(r.URL.Path, "/secrets/s"):
		return corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			Data: map[string][]byte{"data-1": []byte("secret-1")}}
	case strings.HasSuffix(r.URL.Path, "/services"):
		return corev1.ServiceList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceList"}, Items: []corev1.Service{{
			ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec:       corev1.ServiceSpec{ClusterIP: "10.96.0.5", Ports: []corev1.ServicePort{{Port: 80}}}}}}
	}
	return nil
}

// TestEnvFromKeysAsUpstream checks what the conformance tests "ConfigMap
// / Secrets should be consumable via the environment" and "... variable
// names with various prefixes" expect: keys that are not C identifiers
// become variables, prefixes apply, env overrides envFrom, a key with
// "=" is skipped, and a missing optional source is empty.
func TestEnvFromKeysAsUpstream(t *testing.T) {
	m, _ := apiNode(t, envObjects)
	yes := true
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}}
	c := &corev1.Container{
		EnvFrom: []corev1.EnvFromSource{
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}},
			{Prefix: "1-", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}},
			{Prefix: "s_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}}},
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}, Optional: &yes}},
		},
		Env: []corev1.EnvVar{{Name: "data.2", Value: "override $(data-1)"}},
	}
	kv, err := m.resolveEnv(context.Background(), pod, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range kv {
		got[e.Key] = string(e.Value)
	}
	want := map[string]string{
		"data-1": "value-1", "data.2": "override value-1", "1-data-1": "value-1", "1-data.2": "value-2",
		"s_data-1": "secret-1", "WEB_SERVICE_HOST": "10.96.0.5", "WEB_PORT": "tcp://10.96.0.5:80",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (env %v)", k, got[k], v, got)
		}
	}
	for k := range got {
		if strings.Contains(k, "=") {
			t.Errorf("a key with = became a variable: %q", k)
		}
	}

	c.EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}}}}
	if _, err := m.resolveEnv(context.Background(), pod, c, nil); err == nil || !strings.Contains(err.Error(), "gone") {
		t.Errorf("a missing required configmap: err = %v, want one naming it", err)
	}
}
