package csi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	csimock "github.com/kubernetes-csi/csi-test/v5/driver"
	"go.uber.org/mock/gomock"

	"github.com/hivelet/hivelet/kubelet-lite/csi/csitest"
)

const testDriver = "mock.csi.example.com"

// mockPlugin is csi-test's mock CSI driver on a unix socket.
type mockPlugin struct {
	node     *csimock.MockNodeServer
	endpoint string
}

// startMock serves a mock CSI node plugin that answers NodeGetInfo and
// NodeGetCapabilities (with staging when stage is true) any number of
// times; the test sets the other calls' expectations.
func startMock(t *testing.T, stage bool) *mockPlugin {
	t.Helper()
	node, endpoint := csitest.StartMock(t)
	node.EXPECT().NodeGetInfo(gomock.Any(), gomock.Any()).Return(&csipb.NodeGetInfoResponse{NodeId: "node-7", MaxVolumesPerNode: 16,
		AccessibleTopology: &csipb.Topology{Segments: map[string]string{"topology.example.com/zone": "z1"}}}, nil).AnyTimes()
	var caps []*csipb.NodeServiceCapability
	if stage {
		caps = append(caps, &csipb.NodeServiceCapability{Type: &csipb.NodeServiceCapability_Rpc{
			Rpc: &csipb.NodeServiceCapability_RPC{Type: csipb.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME}}})
	}
	node.EXPECT().NodeGetCapabilities(gomock.Any(), gomock.Any()).Return(&csipb.NodeGetCapabilitiesResponse{Capabilities: caps}, nil).AnyTimes()
	return &mockPlugin{node: node, endpoint: endpoint}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newTestManager runs a manager rooted in a short temporary directory
// (sockets live there) until the test ends.
func newTestManager(t *testing.T, api *fakeAPI) *Manager {
	t.Helper()
	root, err := os.MkdirTemp("", "kl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	var a API
	if api != nil {
		a = api
	}
	m := New(root, "node-a", a, quiet())
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return m
}

// register serves a registrar for p in m's registration directory.
func register(t *testing.T, m *Manager, name string, p *mockPlugin, edit func(*csitest.Registrar)) *csitest.Registrar {
	t.Helper()
	r := csitest.NewRegistrar(name, p.endpoint)
	if edit != nil {
		edit(r)
	}
	if err := r.Serve(filepath.Join(m.RegistryDir(), "reg.sock")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("not within 10 s: %s", what)
		}
	}
}

func TestRegistrationRecordsDriverOnNode(t *testing.T) {
	api := newFakeAPI("node-a")
	m := newTestManager(t, api)
	p := startMock(t, true)
	r := register(t, m, testDriver, p, nil)
	waitFor(t, "registration status", func() bool { return r.Last() != nil })
	if st := r.Last(); !st.PluginRegistered {
		t.Fatalf("registration refused: %s", st.Error)
	}
	if d := m.driver(testDriver); d == nil || !d.stage || d.nodeID != "node-7" {
		t.Fatalf("driver as registered: %+v", d)
	}
	n, c := api.snapshot()
	ids := map[string]string{}
	if err := json.Unmarshal([]byte(n.Annotations[nodeIDAnnotation]), &ids); err != nil || ids[testDriver] != "node-7" {
		t.Fatalf("nodeid annotation %q", n.Annotations[nodeIDAnnotation])
	}
	if n.Labels["topology.example.com/zone"] != "z1" {
		t.Fatalf("topology label missing: %v", n.Labels)
	}
	if c == nil || len(c.Spec.Drivers) != 1 {
		t.Fatalf("CSINode %+v", c)
	}
	got := c.Spec.Drivers[0]
	if got.Name != testDriver || got.NodeID != "node-7" || len(got.TopologyKeys) != 1 || got.Allocatable == nil || *got.Allocatable.Count != 16 {
		t.Fatalf("CSINode driver %+v", got)
	}

	// The registrar goes (its pod was deleted): so does the driver.
	r.Stop()
	waitFor(t, "deregistration", func() bool { return m.driver(testDriver) == nil })
	waitFor(t, "CSINode entry removed", func() bool {
		n, c := api.snapshot()
		return len(c.Spec.Drivers) == 0 && n.Annotations[nodeIDAnnotation] == ""
	})
}

// A plugin's word about itself is checked before anything is dialled or
// written: each of these is refused, and the plugin is told why.
func TestRegistrationRefusals(t *testing.T) {
	p := startMock(t, false)
	for _, tc := range []struct {
		name, want string
		edit       func(*csitest.Registrar)
	}{
		{"device plugin type", "plugin type", func(r *csitest.Registrar) { r.Info.Type = "DevicePlugin" }},
		{"name with a path", "not a DNS subdomain", func(r *csitest.Registrar) { r.Info.Name = "../../etc" }},
		{"name too long", "longer than 63", func(r *csitest.Registrar) { r.Info.Name = strings.Repeat("a", 64) }},
		{"old CSI", "CSI 1.x", func(r *csitest.Registrar) { r.Info.SupportedVersions = []string{"0.3.0"} }},
		{"relative endpoint", "absolute, clean path", func(r *csitest.Registrar) { r.Info.Endpoint = "csi.sock" }},
		{"endpoint not a socket", "not a unix socket", func(r *csitest.Registrar) { r.Info.Endpoint = "/etc/passwd" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := newFakeAPI("node-a")
			m := newTestManager(t, api)
			r := register(t, m, testDriver, p, tc.edit)
			waitFor(t, "registration status", func() bool { return r.Last() != nil })
			st := r.Last()
			if st.PluginRegistered || !strings.Contains(st.Error, tc.want) {
				t.Fatalf("status %+v, want refused with %q", st, tc.want)
			}
			if len(m.Drivers()) != 0 {
				t.Fatalf("drivers %v registered", m.Drivers())
			}
			if n, _ := api.snapshot(); n.Annotations[nodeIDAnnotation] != "" {
				t.Fatalf("refused driver written onto the Node: %v", n.Annotations)
			}
		})
	}
}

// A topology value that contradicts a label the Node already has is
// refused, as upstream refuses it: the scheduler would trust the wrong one.
func TestRegistrationTopologyCollision(t *testing.T) {
	api := newFakeAPI("node-a")
	api.node.Labels["topology.example.com/zone"] = "z9"
	m := newTestManager(t, api)
	r := register(t, m, testDriver, startMock(t, false), nil)
	waitFor(t, "registration status", func() bool { return r.Last() != nil })
	if st := r.Last(); st.PluginRegistered || !strings.Contains(st.Error, "the Node's label says z9") {
		t.Fatalf("status %+v", st)
	}
}
