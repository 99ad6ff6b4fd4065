// Package deviceplugin is kubelet-lite's side of the device plugin API
// (deviceplugin/v1beta1), as the upstream kubelet's device manager: a
// registration socket at <root-dir>/device-plugins/kubelet.sock where
// plugins announce an extended resource and their own socket;
// ListAndWatch keeps the resource's devices and their health, which
// become the Node's capacity and allocatable; a container that asks for
// the resource gets devices at creation through Allocate (with
// GetPreferredAllocation and PreStartContainer when the plugin wants
// them), and what Allocate answered (devices, mounts, env, annotations,
// CDI devices) goes into its CRI config. Assignments are checkpointed, so
// a restarted kubelet gives a restarted container the same devices.
package deviceplugin

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// SocketName is the registration socket in the plugin directory.
const SocketName = "kubelet.sock"

// callTimeout bounds one call to a plugin.
const callTimeout = 10 * time.Second

// plugin is one registered resource.
type plugin struct {
	name    string
	options *pluginapi.DevicePluginOptions
	client  pluginapi.DevicePluginClient
	conn    *grpc.ClientConn
	devices map[string]*pluginapi.Device // by ID
	cancel  context.CancelFunc
}

// Manager holds the registered plugins and the devices given out.
type Manager struct {
	dir string
	log *slog.Logger

	mu      sync.Mutex
	plugins map[string]*plugin // by resource name
	assign  assignments        // guarded by mu
	server  *grpc.Server
}

// New returns a manager for the plugin directory dir
// (<root-dir>/device-plugins).
func New(dir string, log *slog.Logger) *Manager {
	return &Manager{dir: dir, log: log, plugins: map[string]*plugin{}, assign: assignments{}}
}

// Start serves the registration socket until ctx ends. A socket left by
// an earlier kubelet is replaced: plugins watch for the new one and
// register again.
func (m *Manager) Start(ctx context.Context) error {
	if err := os.MkdirAll(m.dir, 0o750); err != nil {
		return fmt.Errorf("create device plugin directory: %w", err)
	}
	if err := m.loadCheckpoint(); err != nil {
		m.log.Warn("Device assignments checkpoint unreadable; starting without it", "error", err)
	}
	sock := filepath.Join(m.dir, SocketName)
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("listen on the device plugin registration socket: %w", err)
	}
	m.server = grpc.NewServer()
	pluginapi.RegisterRegistrationServer(m.server, registration{m: m, ctx: ctx})
	go func() { _ = m.server.Serve(ln) }()
	go func() {
		<-ctx.Done()
		m.server.Stop()
		m.mu.Lock()
		for _, p := range m.plugins {
			p.cancel()
		}
		m.mu.Unlock()
	}()
	return nil
}

type registration struct {
	pluginapi.UnimplementedRegistrationServer
	m   *Manager
	ctx context.Context
}

// Register admits a plugin: the API version, an extended resource name
// outside kubernetes.io, and an endpoint that is a socket name in the
// plugin directory (a plugin's word never picks a path elsewhere).
func (r registration) Register(_ context.Context, req *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	if err := validate(req); err != nil {
		r.m.log.Warn("Device plugin registration refused", "resource", req.GetResourceName(), "error", err)
		return nil, err
	}
	if err := r.m.connect(r.ctx, req); err != nil {
		r.m.log.Warn("Device plugin registration failed", "resource", req.ResourceName, "error", err)
		return nil, err
	}
	return &pluginapi.Empty{}, nil
}

func validate(req *pluginapi.RegisterRequest) error {
	if req.GetVersion() != pluginapi.Version {
		return fmt.Errorf("register: API version %q is not supported (want %s)", req.GetVersion(), pluginapi.Version)
	}
	name := req.GetResourceName()
	domain, _, ok := strings.Cut(name, "/")
	if !ok || len(validation.IsQualifiedName(name)) > 0 || domain == "kubernetes.io" || strings.HasSuffix(domain, ".kubernetes.io") {
		return fmt.Errorf("register: %q is not an extended resource name (domain/name outside kubernetes.io)", name)
	}
	ep := req.GetEndpoint()
	if ep == "" || ep != filepath.Base(ep) || ep == "." || ep == ".." || ep == SocketName {
		return fmt.Errorf("register: endpoint %q must be a socket name in the device plugin directory", ep)
	}
	return nil
}

// connect dials the plugin and follows its devices; a plugin that
// registers again replaces its earlier self.
func (m *Manager) connect(ctx context.Context, req *pluginapi.RegisterRequest) error {
	conn, err := grpc.NewClient("unix://"+filepath.Join(m.dir, req.Endpoint), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial device plugin %s: %w", req.Endpoint, err)
	}
	pctx, cancel := context.WithCancel(ctx)
	p := &plugin{name: req.ResourceName, options: req.Options, client: pluginapi.NewDevicePluginClient(conn), conn: conn,
		devices: map[string]*pluginapi.Device{}, cancel: cancel}
	if p.options == nil {
		p.options = &pluginapi.DevicePluginOptions{}
	}
	m.mu.Lock()
	if old := m.plugins[req.ResourceName]; old != nil {
		old.cancel()
	}
	m.plugins[req.ResourceName] = p
	m.mu.Unlock()
	m.log.Info("Device plugin registered", "resource", req.ResourceName, "endpoint", req.Endpoint)
	go m.watch(pctx, p)
	return nil
}

// watch follows ListAndWatch until the plugin goes; its devices are then
// unhealthy (capacity stays, allocatable drops) until it registers again.
func (m *Manager) watch(ctx context.Context, p *plugin) {
	defer p.conn.Close()
	stream, err := p.client.ListAndWatch(ctx, &pluginapi.Empty{})
	if err == nil {
		for {
			resp, rerr := stream.Recv()
			if rerr != nil {
				err = rerr
				break
			}
			devs := map[string]*pluginapi.Device{}
			for _, d := range resp.GetDevices() {
				if d.GetID() != "" {
					devs[d.ID] = d
				}
			}
			m.mu.Lock()
			p.devices = devs
			m.mu.Unlock()
			m.log.Info("Device plugin reported devices", "resource", p.name, "devices", len(devs), "healthy", countHealthy(devs))
		}
	}
	if ctx.Err() != nil {
		return // replaced, or the kubelet stops
	}
	m.log.Warn("Device plugin went away; its devices are unhealthy until it registers again", "resource", p.name, "error", err)
	m.mu.Lock()
	for id, d := range p.devices {
		p.devices[id] = &pluginapi.Device{ID: d.ID, Health: pluginapi.Unhealthy, Topology: d.Topology}
	}
	m.mu.Unlock()
}

func countHealthy(devs map[string]*pluginapi.Device) int {
	n := 0
	for _, d := range devs {
		if d.Health == pluginapi.Healthy {
			n++
		}
	}
	return n
}

// Resources is what the plugins offer: every device in capacity, the
// healthy ones in allocatable, by resource name.
func (m *Manager) Resources() (capacity, allocatable corev1.ResourceList) {
	m.mu.Lock()
	defer m.mu.Unlock()
	capacity, allocatable = corev1.ResourceList{}, corev1.ResourceList{}
	for name, p := range m.plugins {
		capacity[corev1.ResourceName(name)] = *resource.NewQuantity(int64(len(p.devices)), resource.DecimalSI)
		allocatable[corev1.ResourceName(name)] = *resource.NewQuantity(int64(countHealthy(p.devices)), resource.DecimalSI)
	}
	return capacity, allocatable
}

// Allocation is what a container gets from the plugins.
type Allocation = pluginapi.ContainerAllocateResponse

// Allocate gives container c of pod the devices its limits ask for (the
// same ones again when it was given them before, a restart), and returns
// what the plugins answered, merged; nil when it asks for none of the
// plugins' resources.
func (m *Manager) Allocate(ctx context.Context, pod *corev1.Pod, c *corev1.Container) (*Allocation, error) {
	out := &Allocation{Envs: map[string]string{}, Annotations: map[string]string{}}
	any := false
	for _, name := range slices.Sorted(maps.Keys(c.Resources.Limits)) {
		q := c.Resources.Limits[name]
		m.mu.Lock()
		p := m.plugins[string(name)]
		m.mu.Unlock()
		if p == nil || q.Value() == 0 {
			continue
		}
		any = true
		resp, err := m.allocateOne(ctx, p, pod, c.Name, int(q.Value()))
		if err != nil {
			return nil, err
		}
		maps.Copy(out.Envs, resp.Envs)
		maps.Copy(out.Annotations, resp.Annotations)
		out.Mounts = append(out.Mounts, resp.Mounts...)
		out.Devices = append(out.Devices, resp.Devices...)
		out.CdiDevices = append(out.CdiDevices, resp.CdiDevices...)
	}
	if !any {
		return nil, nil
	}
	return out, nil
}

func (m *Manager) allocateOne(ctx context.Context, p *plugin, pod *corev1.Pod, container string, n int) (*pluginapi.ContainerAllocateResponse, error) {
	uid := pod.UID
	m.mu.Lock()
	ids := m.assign.get(uid, container, p.name)
	fresh := len(ids) != n
	if fresh {
		var err error
		if ids, err = m.pick(ctx, p, pod, container, n); err != nil {
			m.mu.Unlock()
			return nil, err
		}
		m.assign.set(uid, container, p.name, ids) // reserved: no other container picks them meanwhile
	}
	m.mu.Unlock()
	release := func() {
		if fresh {
			m.mu.Lock()
			m.assign.set(uid, container, p.name, nil)
			m.mu.Unlock()
		}
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	resp, err := p.client.Allocate(cctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: ids}}})
	if err != nil {
		release()
		return nil, fmt.Errorf("allocate %d %s from its device plugin: %w", n, p.name, err)
	}
	if len(resp.GetContainerResponses()) != 1 {
		release()
		return nil, fmt.Errorf("allocate %s: the device plugin answered %d containers, want 1", p.name, len(resp.GetContainerResponses()))
	}
	if p.options.PreStartRequired {
		if _, err := p.client.PreStartContainer(cctx, &pluginapi.PreStartContainerRequest{DevicesIds: ids}); err != nil {
			release()
			return nil, fmt.Errorf("pre-start %s devices: %w", p.name, err)
		}
	}
	m.mu.Lock()
	err = m.saveCheckpoint()
	m.mu.Unlock()
	if err != nil {
		m.log.Warn("Writing the device assignments checkpoint failed", "error", err)
	}
	return resp.ContainerResponses[0], nil
}

// pick chooses n healthy devices no other container holds, the plugin's
// preference first when it has one. Called with mu held, the plugin call
// included: allocations are rare, and one at a time none can race.
func (m *Manager) pick(ctx context.Context, p *plugin, pod *corev1.Pod, container string, n int) ([]string, error) {
	m.assign.set(pod.UID, container, p.name, nil) // a different count: the old ones go back
	reusable := map[string]bool{}
	for _, ic := range pod.Spec.InitContainers {
		if ic.Name != container && (ic.RestartPolicy == nil || *ic.RestartPolicy != corev1.ContainerRestartPolicyAlways) {
			reusable[ic.Name] = true
		}
	}
	held := m.assign.held(p.name, pod.UID, reusable)
	var free []string
	for id, d := range p.devices {
		if d.Health == pluginapi.Healthy && !held[id] {
			free = append(free, id)
		}
	}
	slices.Sort(free)
	if len(free) < n {
		return nil, fmt.Errorf("requested %d %s, but only %d healthy and free", n, p.name, len(free))
	}
	if !p.options.GetPreferredAllocationAvailable {
		return free[:n], nil
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	resp, err := p.client.GetPreferredAllocation(cctx, &pluginapi.PreferredAllocationRequest{ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{
		{AvailableDeviceIDs: free, AllocationSize: int32(n)}}})
	cancel()
	if err != nil || len(resp.GetContainerResponses()) != 1 {
		m.log.Warn("Device plugin preferred allocation failed; picking in order", "resource", p.name, "error", err)
		return free[:n], nil
	}
	pref := resp.ContainerResponses[0].DeviceIDs
	// Its preference must be a choice among what was offered.
	chosen := slices.DeleteFunc(slices.Clone(pref), func(id string) bool { return !slices.Contains(free, id) })
	for _, id := range free {
		if len(chosen) >= n {
			break
		}
		if !slices.Contains(chosen, id) {
			chosen = append(chosen, id)
		}
	}
	return chosen[:n], nil
}

// Retain frees the devices of pods keep says no longer run here.
func (m *Manager) Retain(keep func(types.UID) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	for uid := range m.assign {
		if !keep(uid) {
			delete(m.assign, uid)
			changed = true
		}
	}
	if changed {
		if err := m.saveCheckpoint(); err != nil {
			m.log.Warn("Writing the device assignments checkpoint failed", "error", err)
		}
	}
}
