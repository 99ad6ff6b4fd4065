package k8s

import (
	"bufio"
	"bytes"
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/hivelet/hivelet/test/harness"
)

// deployObjects decodes deploy/hivelet.yaml.
func deployObjects(t *testing.T) []runtime.Object {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "hivelet.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []runtime.Object
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	for {
		doc, err := r.Read()
		if err != nil {
			break
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		js, err := utilyaml.ToJSON(doc)
		if err != nil {
			t.Fatalf("deploy/hivelet.yaml: %v", err)
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(js, nil, nil)
		if err != nil {
			t.Fatalf("deploy/hivelet.yaml: %v", err)
		}
		out = append(out, obj)
	}
	return out
}

// create writes obj through the API, as a server-side dry run or for real.
func create(t *testing.T, obj runtime.Object, dryRun bool) {
	t.Helper()
	ctx := t.Context()
	opts := metav1.CreateOptions{}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	var err error
	switch o := obj.(type) {
	case *corev1.ServiceAccount:
		_, err = client.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, opts)
	case *corev1.ConfigMap:
		_, err = client.CoreV1().ConfigMaps(o.Namespace).Create(ctx, o, opts)
	case *rbacv1.ClusterRole:
		_, err = client.RbacV1().ClusterRoles().Create(ctx, o, opts)
	case *rbacv1.ClusterRoleBinding:
		_, err = client.RbacV1().ClusterRoleBindings().Create(ctx, o, opts)
	case *appsv1.DaemonSet:
		_, err = client.AppsV1().DaemonSets(o.Namespace).Create(ctx, o, opts)
	default:
		t.Fatalf("deploy/hivelet.yaml: unexpected %T", obj)
	}
	if err != nil {
		t.Fatalf("create %T (dry run %v): %v", obj, dryRun, err)
	}
}

// TestPrivilegedK8sDeployManifests: every object of deploy/hivelet.yaml
// passes the API server's validation and admission (a server-side dry
// run); the DaemonSet is what the issue asks of it; and an agent holding
// only the ServiceAccount's token, bound by the manifest's RBAC, with the
// API server given by --k8s-api-server (its kubeconfig points nowhere),
// serves a Service.
func TestPrivilegedK8sDeployManifests(t *testing.T) {
	removeDeployed() // what an interrupted run left
	objs := deployObjects(t)
	var ds *appsv1.DaemonSet
	var role *rbacv1.ClusterRole
	for _, o := range objs {
		create(t, o, true)
		switch o := o.(type) {
		case *appsv1.DaemonSet:
			ds = o
		case *rbacv1.ClusterRole:
			role = o
		}
	}
	if ds == nil || role == nil {
		t.Fatal("no DaemonSet or ClusterRole in deploy/hivelet.yaml")
	}
	spec := ds.Spec.Template.Spec
	agent := spec.Containers[0]
	if !spec.HostNetwork || spec.HostPID || ds.Spec.UpdateStrategy.RollingUpdate.MaxSurge.IntValue() != 0 ||
		agent.SecurityContext.Privileged == nil || *agent.SecurityContext.Privileged || !slices.Contains(agent.SecurityContext.Capabilities.Add, "BPF") ||
		agent.LivenessProbe == nil || agent.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("DaemonSet spec: %+v", spec)
	}
	for _, r := range role.Rules {
		for _, v := range r.Verbs {
			if v != "get" && v != "list" && v != "watch" {
				t.Errorf("the agent's role may %s %v", v, r.Resources)
			}
		}
	}

	// For real now: the ServiceAccount and its RBAC.
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.ServiceAccount, *rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding:
			create(t, o, false)
		}
	}
	t.Cleanup(removeDeployed)
	tok, err := client.CoreV1().ServiceAccounts("kube-system").CreateToken(t.Context(), "hivelet", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	var server string
	var ca []byte
	for _, c := range admin.Clusters {
		server, ca = c.Server, c.CertificateAuthorityData
		if len(ca) == 0 && c.CertificateAuthority != "" {
			if ca, err = os.ReadFile(c.CertificateAuthority); err != nil {
				t.Fatal(err)
			}
		}
	}
	sa := clientcmdapi.NewConfig()
	sa.Clusters["c"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:1", CertificateAuthorityData: ca}
	sa.AuthInfos["hivelet"] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	sa.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "hivelet"}
	sa.CurrentContext = "c"
	saKubeconfig := filepath.Join(t.TempDir(), "hivelet.kubeconfig")
	if err := clientcmd.WriteToFile(*sa, saKubeconfig); err != nil {
		t.Fatal(err)
	}

	e := newEnvAs(t, "--kubeconfig", saKubeconfig, "--k8s-api-server", server)
	svc := e.service(t, "deployed", nil)
	vip := netip.AddrPortFrom(netip.MustParseAddr(svc.Spec.ClusterIP), 80)
	e.createSlice(t, e.sliceFor(svc.Name, 0, 1))
	harness.WaitFor(t, "the Service served by an agent with the manifest's RBAC", func() bool { return len(e.backends(vip.String()+"/TCP")) == 2 })
	if got := e.answers(t, vip, 20); !slices.Equal(got, []string{"pod-1", "pod-2"}) {
		t.Fatalf("answers %v", got)
	}
	if strings.Contains(e.agent.Log(), "forbidden") {
		t.Errorf("the agent was refused something:\n%s", e.agent.Log())
	}

	// The init container's command: the pod CIDRs from the Node.
	node, err := client.CoreV1().Nodes().Get(t.Context(), e.nodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Spec.PodCIDR, node.Spec.PodCIDRs = "10.244.7.0/24", []string{"10.244.7.0/24"}
	if _, err := client.CoreV1().Nodes().Update(t.Context(), node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	plugin := filepath.Join(dir, "plugin")
	if err := os.WriteFile(plugin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(hiveletBin, "cni", "install", "--from-node", e.nodeName, "--kubeconfig", saKubeconfig, "--k8s-api-server", server,
		"--bin-dir", filepath.Join(dir, "bin"), "--conf-dir", filepath.Join(dir, "conf"), "--plugin", plugin).CombinedOutput()
	if err != nil {
		t.Fatalf("cni install --from-node: %v\n%s", err, out)
	}
	conf, err := os.ReadFile(filepath.Join(dir, "conf", "05-hivelet.conflist"))
	if err != nil || !strings.Contains(string(conf), "10.244.7.0/24") {
		t.Fatalf("conflist %s: %v", conf, err)
	}
}

// removeDeployed deletes what the test creates for real.
func removeDeployed() {
	ctx := context.Background()
	_ = client.RbacV1().ClusterRoleBindings().Delete(ctx, "hivelet", metav1.DeleteOptions{})
	_ = client.RbacV1().ClusterRoles().Delete(ctx, "hivelet", metav1.DeleteOptions{})
	_ = client.CoreV1().ServiceAccounts("kube-system").Delete(ctx, "hivelet", metav1.DeleteOptions{})
}
