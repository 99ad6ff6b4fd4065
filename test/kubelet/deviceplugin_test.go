package kubelet

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hivelet/hivelet/kubelet-lite/deviceplugin/fakeplugin"
)

// TestPrivilegedKubeletLiteDevicePlugin: a device plugin with two fake
// devices registers with kubelet-lite; the Node reports them; a pod
// asking for one runs with the plugin's answer inside (its environment
// variable and read-only mount); a pod asking for three is refused with
// OutOfexample.com/dev.
func TestPrivilegedKubeletLiteDevicePlugin(t *testing.T) {
	e := newEnv(t, true, "")
	dir := filepath.Join(e.rootDir(), "device-plugins")
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, "kubelet.sock")); err == nil {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("no registration socket in %s", dir)
		}
	}
	const res = "example.com/dev"
	devFile := filepath.Join(t.TempDir(), "fake-device")
	if err := os.WriteFile(devFile, []byte("fake device 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	plug := fakeplugin.New(res, 2)
	plug.MountHostPath = devFile
	if err := plug.Serve(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(plug.Stop)
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		n, err := e.client.CoreV1().Nodes().Get(e.ctx, e.node, metav1.GetOptions{})
		if err == nil {
			c, a := n.Status.Capacity[res], n.Status.Allocatable[res]
			if c.Value() == 2 && a.Value() == 2 {
				break
			}
		}
		if time.Now().After(end) {
			t.Fatalf("the Node does not report 2 %s", res)
		}
	}
	asking := func(n int64) corev1.ResourceRequirements {
		q := *resource.NewQuantity(n, resource.DecimalSI)
		return corev1.ResourceRequirements{Requests: corev1.ResourceList{res: q}, Limits: corev1.ResourceList{res: q}}
	}
	e.runPod(t, "one", nil, corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: asking(1)}}})
	e.runPod(t, "three", nil, corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: asking(3)}}})
	p := e.waitPod(t, "one", "Running", running)
	id := containerID(p, "c")
	if got := e.exec(t, id, "sh", "-c", "echo $"+fakeplugin.EnvName); got != "dev-0" {
		t.Errorf("%s inside the container: %q, want dev-0", fakeplugin.EnvName, got)
	}
	if got := e.exec(t, id, "cat", "/fake-device"); got != "fake device 0" {
		t.Errorf("the plugin's mount inside the container: %q", got)
	}
	if got := e.exec(t, id, "sh", "-c", "echo x > /fake-device && echo writable || echo read-only"); got != "read-only" {
		t.Errorf("the plugin's read-only mount is %s", got)
	}
	e.waitPod(t, "three", "Failed: OutOfexample.com/dev", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodFailed && p.Status.Reason == "OutOf"+res
	})
}
