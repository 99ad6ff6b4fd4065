package kubelet

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/hivelet/hivelet/test/images"
)

// TestPrivilegedKubeletLiteHiveletImage: hivelet's own image, as `make
// image` writes it, is the same archive when built twice, containerd
// takes it with `ctr images import`, and a pod runs the binaries it holds
// (a scratch image: nothing else is there to run them).
func TestPrivilegedKubeletLiteHiveletImage(t *testing.T) {
	e := newEnv(t, true, "")
	archive := filepath.Join(t.TempDir(), "hivelet-image.tar")
	a, err := images.Hivelet(binDir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := images.Hivelet(binDir)
	if err != nil {
		t.Fatal(err)
	}
	if a.ManifestDigest != b.ManifestDigest {
		t.Fatalf("two builds of the same binaries: %s and %s", a.ManifestDigest, b.ManifestDigest)
	}
	if err := a.WriteLayout(archive, images.HiveletRef); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ctr", "--address", e.rt.Sock, "-n", "k8s.io", "images", "import", archive).CombinedOutput(); err != nil {
		t.Fatalf("ctr images import: %v\n%s", err, out)
	}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "hivelet-image", Namespace: e.ns},
		Spec: corev1.PodSpec{NodeName: e.node, RestartPolicy: corev1.RestartPolicyNever, AutomountServiceAccountToken: ptr.To(false),
			Containers: []corev1.Container{{Name: "main", Image: images.HiveletRef, ImagePullPolicy: corev1.PullNever, Args: []string{"agent", "--help"}}}}}
	if _, err := e.client.CoreV1().Pods(e.ns).Create(e.ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitPod(t, "hivelet-image", "Succeeded", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	code, body, err := e.kubeletGet(t, "/containerLogs/"+e.ns+"/hivelet-image/main", &e.clientCert)
	if err != nil || code != 200 || !strings.Contains(body, "--cleanup-kube-proxy") {
		t.Fatalf("logs: %d %v\n%s", code, err, body)
	}
}
