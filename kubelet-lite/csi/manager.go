package csi

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	storagev1 "k8s.io/api/storage/v1"
)

// scanPeriod is how often the registration directory is read: a plugin
// that put its socket there is registered within it.
const scanPeriod = time.Second

// retryPeriod spaces the attempts to register a socket that failed.
const retryPeriod = 5 * time.Second

// Manager registers CSI node plugins and mounts pods' CSI volumes.
type Manager struct {
	root string // the kubelet's --root-dir
	node string
	api  API // nil without an API server
	log  *slog.Logger

	mu      sync.Mutex
	drivers map[string]*driver      // guarded by mu: by name
	sockets map[string]*socketState // guarded by mu: by registration socket path
	// published holds the mount points this process published or found
	// mounted, and whether each is read-only; guarded by mu.
	published map[string]bool
	// hostPaths are the pods' claims bound to hostPath and local
	// volumes, by their would-be mount point: resolved once.
	hostPaths map[string]hostVolume

	// opMu makes staging decisions one at a time: a volume staged for one
	// pod is never unstaged for another's teardown in between.
	opMu sync.Mutex
}

type hostVolume struct {
	path     string
	readOnly bool
}

type socketState struct {
	driver  string // registered under this name; "" when not registered
	mod     time.Time
	retryAt time.Time
}

// New returns a manager for the kubelet rooted at root, on node. api is
// nil without an API server: plugins then register, but no volume that
// needs API objects can be mounted.
func New(root, node string, api API, log *slog.Logger) *Manager {
	return &Manager{root: root, node: node, api: api, log: log,
		drivers: map[string]*driver{}, sockets: map[string]*socketState{}, published: map[string]bool{}, hostPaths: map[string]hostVolume{}}
}

// RegistryDir is where node plugins (node-driver-registrar) put their
// registration sockets.
func (m *Manager) RegistryDir() string { return filepath.Join(m.root, registryDir) }

// Start creates the registration directory and watches it until ctx ends.
func (m *Manager) Start(ctx context.Context) error {
	if err := os.MkdirAll(m.RegistryDir(), 0o750); err != nil {
		return err
	}
	go m.run(ctx)
	return nil
}

func (m *Manager) run(ctx context.Context) {
	t := time.NewTicker(scanPeriod)
	defer t.Stop()
	csiNodeDone := m.api == nil
	for {
		if !csiNodeDone {
			// The scheduler counts a node's volumes from its CSINode,
			// which exists from the start, drivers or not.
			if err := m.api.UpdateCSINode(ctx, m.node, func(*storagev1.CSINode) bool { return false }); err == nil {
				csiNodeDone = true
			} else {
				m.log.Debug("CSINode not written yet; retrying", "error", err)
			}
		}
		m.scan(ctx)
		select {
		case <-ctx.Done():
			m.closeAll()
			return
		case <-t.C:
		}
	}
}

func (m *Manager) closeAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range m.drivers {
		d.close()
	}
}

// driver returns the registered driver of that name, or nil.
func (m *Manager) driver(name string) *driver {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.drivers[name]
}

// Drivers lists the registered drivers' names.
func (m *Manager) Drivers() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.drivers))
	for n := range m.drivers {
		out = append(out, n)
	}
	return out
}
