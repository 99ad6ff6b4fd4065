package kubelet

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/hivelet/hivelet/test/harness"
)

// clusterCA is the test control plane's CA (hack/k8s.sh), which the API
// server trusts for client certificates: the test signs with it as the
// controller manager's csrsigning controller would.
type clusterCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

func loadClusterCA(t *testing.T, kubeconfig string) *clusterCA {
	t.Helper()
	dir := filepath.Join(filepath.Dir(kubeconfig), "pki")
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(pair.Certificate[0])
	raw, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	return &clusterCA{cert: cert, key: pair.PrivateKey.(crypto.Signer), pem: raw}
}

// issue signs a client certificate for pub with subject, valid from now
// for life.
func (ca *clusterCA) issue(t *testing.T, subject pkix.Name, pub crypto.PublicKey, life time.Duration) []byte {
	t.Helper()
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: subject, NotBefore: now, NotAfter: now.Add(life),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// signed is one request the test's signer approved.
type signed struct {
	requester string
	notAfter  time.Time
}

// signer approves and signs the node's kubelet-client requests, as
// kube-controller-manager's csrapproving and csrsigning do: the first
// with a short life (lifes[0]), later ones with the next. It checks each
// request is what the upstream kubelet files.
func signer(ctx context.Context, t *testing.T, client kubernetes.Interface, ca *clusterCA, node string, lifes []time.Duration) func() []signed {
	var mu sync.Mutex
	var done []signed
	seen := map[string]bool{} // guarded by mu once the goroutine runs
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for name := range seen {
			_ = client.CertificatesV1().CertificateSigningRequests().Delete(context.Background(), name, metav1.DeleteOptions{})
		}
	})
	go func() {
		for ctx.Err() == nil {
			list, err := client.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
			for i := range list.Items {
				csr := &list.Items[i]
				mu.Lock()
				old := seen[csr.Name]
				mu.Unlock()
				if err != nil || old || csr.Spec.SignerName != certificatesv1.KubeAPIServerClientKubeletSignerName {
					continue
				}
				b, _ := pem.Decode(csr.Spec.Request)
				req, perr := x509.ParseCertificateRequest(b.Bytes)
				if perr != nil || req.Subject.CommonName != "system:node:"+node {
					continue // another test's node
				}
				mu.Lock()
				seen[csr.Name] = true
				mu.Unlock()
				if !slices.Equal(req.Subject.Organization, []string{"system:nodes"}) ||
					!slices.Equal(csr.Spec.Usages, []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}) {
					t.Errorf("request %s: subject %v usages %v", csr.Name, req.Subject, csr.Spec.Usages)
				}
				mu.Lock()
				life := lifes[min(len(done), len(lifes)-1)]
				mu.Unlock()
				csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
					Type: certificatesv1.CertificateApproved, Status: "True", Reason: "TestApproved", Message: "approved by the test"})
				approved, err := client.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{})
				if err != nil {
					t.Errorf("approve %s: %v", csr.Name, err)
					continue
				}
				approved.Status.Certificate = ca.issue(t, req.Subject, req.PublicKey, life)
				if _, err := client.CertificatesV1().CertificateSigningRequests().UpdateStatus(ctx, approved, metav1.UpdateOptions{}); err != nil {
					t.Errorf("sign %s: %v", csr.Name, err)
					continue
				}
				mu.Lock()
				done = append(done, signed{requester: csr.Spec.Username, notAfter: time.Now().Add(life)})
				mu.Unlock()
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	return func() []signed {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(done)
	}
}

// TestPrivilegedKubeletLiteCertificates: a node started with only
// bootstrap credentials (a member of system:bootstrappers) files a
// request for its client certificate, writes its kubeconfig once it is
// signed, registers as system:node:<name>, and before that 20-second
// certificate expires requests the next one with its own credentials;
// after the first has expired it still renews its Lease.
func TestPrivilegedKubeletLiteCertificates(t *testing.T) {
	e := prepareNode(t, true, "", "")
	ca := loadClusterCA(t, e.kubeconfig)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()

	// Bootstrap credentials, as a bootstrap token gives them: allowed to
	// file requests and nothing else.
	bootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	bootUser := "system:bootstrap:" + e.node
	bootCert := ca.issue(t, pkix.Name{CommonName: bootUser, Organization: []string{"system:bootstrappers"}}, &bootKey.PublicKey, time.Hour)
	keyDER, _ := x509.MarshalECPrivateKey(bootKey)
	admin, err := clientcmd.LoadFromFile(e.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	boot := clientcmdapi.NewConfig() // same server and CA, bootstrap user
	boot.Clusters["c"] = admin.Clusters[admin.Contexts[admin.CurrentContext].Cluster]
	boot.Clusters["c"].CertificateAuthorityData, boot.Clusters["c"].CertificateAuthority = ca.pem, ""
	boot.AuthInfos["u"] = &clientcmdapi.AuthInfo{ClientCertificateData: bootCert,
		ClientKeyData: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})}
	boot.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	boot.CurrentContext = "c"
	bootPath := filepath.Join(dir, "bootstrap-kubelet.conf")
	if err := clientcmd.WriteToFile(*boot, bootPath); err != nil {
		t.Fatal(err)
	}
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "test-bootstrap-" + e.node},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:node-bootstrapper"},
		Subjects: []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: bootUser}}}
	if _, err := e.client.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.client.RbacV1().ClusterRoleBindings().Delete(context.Background(), crb.Name, metav1.DeleteOptions{})
	})

	kubeconfig := filepath.Join(dir, "kubelet.conf")
	certDir := filepath.Join(dir, "pki")
	for i, a := range e.args {
		if a == "--kubeconfig" {
			e.args[i+1] = kubeconfig
		}
	}
	e.args = append(e.args, "--bootstrap-kubeconfig", bootPath, "--rotate-certificates", "--cert-dir", certDir)
	const firstLife = 20 * time.Second
	issued := signer(ctx, t, e.client, ca, e.node, []time.Duration{firstLife, time.Hour})
	e.start()

	waitFor := func(what string, timeout time.Duration, cond func() bool) {
		t.Helper()
		for end := time.Now().Add(timeout); !cond(); time.Sleep(200 * time.Millisecond) {
			if time.Now().After(end) || e.kubelet.Exited() {
				t.Fatalf("%s: not within %v\n%s", what, timeout, harness.Tail(e.kubelet.Log(), 3000))
			}
		}
	}
	waitFor("bootstrap certificate signed", 30*time.Second, func() bool { return len(issued()) >= 1 })
	waitFor("node registered", 30*time.Second, func() bool {
		_, err := e.client.CoreV1().Nodes().Get(ctx, e.node, metav1.GetOptions{})
		return err == nil
	})
	written, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if current := filepath.Join(certDir, "kubelet-client-current.pem"); written.CertFile != current || written.KeyFile != current {
		t.Errorf("kubeconfig names %s and %s, want %s", written.CertFile, written.KeyFile, current)
	}
	waitFor("certificate rotated", firstLife, func() bool { return len(issued()) >= 2 })
	got := issued()
	if got[0].requester != bootUser || got[1].requester != "system:node:"+e.node {
		t.Errorf("requests filed by %q then %q, want %q then the node", got[0].requester, got[1].requester, bootUser)
	}
	// The first certificate has expired: a Lease renewed after that was
	// renewed with the second.
	expired := got[0].notAfter.Add(time.Second)
	time.Sleep(time.Until(expired))
	waitFor("Lease renewed after the first certificate expired", 30*time.Second, func() bool {
		l, err := e.client.CoordinationV1().Leases("kube-node-lease").Get(ctx, e.node, metav1.GetOptions{})
		return err == nil && l.Spec.RenewTime != nil && l.Spec.RenewTime.After(expired)
	})
	if n := len(issued()); n != 2 {
		t.Errorf("%d certificates requested, want 2 (a one-hour one needs no rotation yet)", n)
	}
}
