// Package fakeplugin is a device plugin for tests: it serves fake
// devices of one resource on a socket in the kubelet's plugin directory,
// registers, streams health changes, and answers Allocate with an
// environment variable naming the devices and, when asked, a mount.
package fakeplugin

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// EnvName is the variable Allocate sets: the device IDs, comma-separated.
const EnvName = "FAKE_DEVICES"

// Plugin serves fake devices.
type Plugin struct {
	pluginapi.UnimplementedDevicePluginServer
	Resource string
	// MountHostPath, when set, is mounted read-only at /fake-device.
	MountHostPath string
	// Preferred is answered to GetPreferredAllocation when set.
	Preferred []string

	dir, sock string
	server    *grpc.Server
	mu        sync.Mutex
	devices   []*pluginapi.Device
	changed   chan struct{}
	allocated [][]string
}

// New returns a plugin of n healthy devices named dev-0 ... dev-(n-1).
func New(resource string, n int) *Plugin {
	p := &Plugin{Resource: resource, changed: make(chan struct{}, 1)}
	for i := range n {
		p.devices = append(p.devices, &pluginapi.Device{ID: fmt.Sprintf("dev-%d", i), Health: pluginapi.Healthy})
	}
	return p
}

// Serve listens on a socket named for the resource in dir, and registers
// with the kubelet's socket there.
func (p *Plugin) Serve(dir string) error {
	p.dir = dir
	p.sock = strings.NewReplacer("/", "-", ".", "-").Replace(p.Resource) + ".sock"
	path := filepath.Join(dir, p.sock)
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	p.server = grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(p.server, p)
	go func() { _ = p.server.Serve(ln) }()
	return p.Register()
}

// Register announces the plugin to the kubelet (again, after a kubelet
// restart).
func (p *Plugin) Register() error {
	conn, err := grpc.NewClient("unix://"+filepath.Join(p.dir, "kubelet.sock"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = pluginapi.NewRegistrationClient(conn).Register(context.Background(), &pluginapi.RegisterRequest{
		Version: pluginapi.Version, Endpoint: p.sock, ResourceName: p.Resource,
		Options: &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: p.Preferred != nil}})
	return err
}

// Stop stops serving: the kubelet sees the plugin go.
func (p *Plugin) Stop() { p.server.Stop() }

// SetHealth marks a device healthy or not, told to the kubelet at once.
func (p *Plugin) SetHealth(id string, healthy bool) {
	p.mu.Lock()
	for _, d := range p.devices {
		if d.ID == id {
			d.Health = pluginapi.Unhealthy
			if healthy {
				d.Health = pluginapi.Healthy
			}
		}
	}
	p.mu.Unlock()
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// Allocated are the device ID sets Allocate was asked for, in order.
func (p *Plugin) Allocated() [][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.allocated)
}

func (p *Plugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: p.Preferred != nil}, nil
}

func (p *Plugin) ListAndWatch(_ *pluginapi.Empty, s grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	for {
		p.mu.Lock()
		var devs []*pluginapi.Device
		for _, d := range p.devices {
			devs = append(devs, &pluginapi.Device{ID: d.ID, Health: d.Health})
		}
		p.mu.Unlock()
		if err := s.Send(&pluginapi.ListAndWatchResponse{Devices: devs}); err != nil {
			return err
		}
		select {
		case <-s.Context().Done():
			return nil
		case <-p.changed:
		}
	}
}

func (p *Plugin) GetPreferredAllocation(_ context.Context, req *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	out := &pluginapi.PreferredAllocationResponse{}
	for range req.ContainerRequests {
		out.ContainerResponses = append(out.ContainerResponses, &pluginapi.ContainerPreferredAllocationResponse{DeviceIDs: p.Preferred})
	}
	return out, nil
}

func (p *Plugin) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	out := &pluginapi.AllocateResponse{}
	for _, cr := range req.ContainerRequests {
		p.mu.Lock()
		p.allocated = append(p.allocated, slices.Clone(cr.DevicesIds))
		p.mu.Unlock()
		resp := &pluginapi.ContainerAllocateResponse{Envs: map[string]string{EnvName: strings.Join(cr.DevicesIds, ",")},
			Annotations: map[string]string{"fake.example.com/devices": strings.Join(cr.DevicesIds, ",")}}
		if p.MountHostPath != "" {
			resp.Mounts = []*pluginapi.Mount{{ContainerPath: "/fake-device", HostPath: p.MountHostPath, ReadOnly: true}}
		}
		out.ContainerResponses = append(out.ContainerResponses, resp)
	}
	return out, nil
}
