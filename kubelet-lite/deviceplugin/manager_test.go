package deviceplugin

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/hivelet/hivelet/kubelet-lite/deviceplugin/fakeplugin"
)

const res = "example.com/dev"

func start(t *testing.T, dir string) (*Manager, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m := New(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	return m, cancel
}

// waitFor polls the manager's resources until cond holds.
func waitFor(t *testing.T, m *Manager, what string, cond func(capacity, allocatable int64) bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, a := m.Resources()
		cq, aq := c[res], a[res]
		if cond(cq.Value(), aq.Value()) {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%s: capacity %d allocatable %d", what, cq.Value(), aq.Value())
		}
	}
}

func podAsking(uid string, n int64) (*corev1.Pod, *corev1.Container) {
	p := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{
		Limits: corev1.ResourceList{res: *resource.NewQuantity(n, resource.DecimalSI)}}}}}}
	p.UID = types.UID(uid)
	return p, &p.Spec.Containers[0]
}

// TestDevicePlugin: a plugin registers; its devices become capacity and,
// healthy, allocatable; containers get distinct devices, the same again
// when restarted, and their Allocate answer; an unhealthy device leaves
// allocatable; a gone plugin's devices all do; the assignments survive a
// kubelet restart and are freed when their pod is gone.
func TestDevicePlugin(t *testing.T) {
	dir := t.TempDir()
	m, stop := start(t, dir)
	plug := fakeplugin.New(res, 3)
	plug.MountHostPath = "/dev/null"
	if err := plug.Serve(dir); err != nil {
		t.Fatal(err)
	}
	defer plug.Stop()
	waitFor(t, m, "registered", func(c, a int64) bool { return c == 3 && a == 3 })

	ctx := context.Background()
	p1, c1 := podAsking("p1", 2)
	a1, err := m.Allocate(ctx, p1, c1)
	if err != nil {
		t.Fatal(err)
	}
	if a1.Envs[fakeplugin.EnvName] != "dev-0,dev-1" || len(a1.Mounts) != 1 || a1.Mounts[0].HostPath != "/dev/null" {
		t.Errorf("allocation %+v", a1)
	}
	p2, c2 := podAsking("p2", 2)
	if _, err := m.Allocate(ctx, p2, c2); err == nil || !strings.Contains(err.Error(), "only 1 healthy and free") {
		t.Errorf("2 more of 3 devices: %v", err)
	}
	p3, c3 := podAsking("p3", 1)
	if a3, err := m.Allocate(ctx, p3, c3); err != nil || a3.Envs[fakeplugin.EnvName] != "dev-2" {
		t.Errorf("the last device: %+v %v", a3, err)
	}
	// A restarted container gets the same devices.
	if again, err := m.Allocate(ctx, p1, c1); err != nil || again.Envs[fakeplugin.EnvName] != "dev-0,dev-1" {
		t.Errorf("restart: %+v %v", again, err)
	}
	noDevices := &corev1.Container{Name: "plain"}
	if a, err := m.Allocate(ctx, p1, noDevices); a != nil || err != nil {
		t.Errorf("a container asking for nothing: %+v %v", a, err)
	}

	plug.SetHealth("dev-2", false)
	waitFor(t, m, "unhealthy device", func(c, a int64) bool { return c == 3 && a == 2 })

	// A restarted kubelet keeps the assignments; pods gone give theirs back.
	stop()
	time.Sleep(50 * time.Millisecond)
	m2, _ := start(t, dir)
	if err := plug.Register(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, m2, "registered again", func(c, a int64) bool { return c == 3 })
	if again, err := m2.Allocate(ctx, p1, c1); err != nil || again.Envs[fakeplugin.EnvName] != "dev-0,dev-1" {
		t.Errorf("after a kubelet restart: %+v %v", again, err)
	}
	m2.Retain(func(uid types.UID) bool { return uid == "p3" })
	plug.SetHealth("dev-2", true)
	waitFor(t, m2, "healthy again", func(c, a int64) bool { return a == 3 })
	p4, c4 := podAsking("p4", 2)
	if a4, err := m2.Allocate(ctx, p4, c4); err != nil || a4.Envs[fakeplugin.EnvName] != "dev-0,dev-1" {
		t.Errorf("devices of a pod gone: %+v %v", a4, err)
	}

	plug.Stop()
	waitFor(t, m2, "plugin gone", func(c, a int64) bool { return c == 3 && a == 0 })
}

// TestPreferredAllocation: the plugin's preference is followed among the
// free devices; what it names outside them is ignored.
func TestPreferredAllocation(t *testing.T) {
	dir := t.TempDir()
	m, _ := start(t, dir)
	plug := fakeplugin.New(res, 4)
	plug.Preferred = []string{"dev-3", "not-a-device"}
	if err := plug.Serve(dir); err != nil {
		t.Fatal(err)
	}
	defer plug.Stop()
	waitFor(t, m, "registered", func(c, a int64) bool { return a == 4 })
	p, c := podAsking("p", 2)
	if _, err := m.Allocate(context.Background(), p, c); err != nil {
		t.Fatal(err)
	}
	if got := plug.Allocated(); len(got) != 1 || !slices.Equal(got[0], []string{"dev-3", "dev-0"}) {
		t.Errorf("allocated %v, want the preferred dev-3 then dev-0", got)
	}
}

// TestRegistrationRefused: wrong version, a kubernetes.io resource, an
// endpoint that is a path.
func TestRegistrationRefused(t *testing.T) {
	for _, req := range []*pluginapi.RegisterRequest{
		{Version: "v1alpha", Endpoint: "x.sock", ResourceName: res},
		{Version: pluginapi.Version, Endpoint: "x.sock", ResourceName: "kubernetes.io/gpu"},
		{Version: pluginapi.Version, Endpoint: "x.sock", ResourceName: "nodomain"},
		{Version: pluginapi.Version, Endpoint: "../../run/x.sock", ResourceName: res},
		{Version: pluginapi.Version, Endpoint: "kubelet.sock", ResourceName: res},
	} {
		if err := validate(req); err == nil {
			t.Errorf("%+v accepted", req)
		}
	}
}

func TestCheckpointUnreadable(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, checkpointName), []byte("{broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	m, _ := start(t, dir) // logs and starts empty
	if len(m.assign) != 0 {
		t.Errorf("assignments from a broken checkpoint: %v", m.assign)
	}
}
