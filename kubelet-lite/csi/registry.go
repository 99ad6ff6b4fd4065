package csi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// scan registers the sockets that appeared (or were replaced) in the
// registration directory since the last look, retries those that failed,
// and deregisters the drivers whose socket went away.
func (m *Manager) scan(ctx context.Context) {
	entries, err := os.ReadDir(m.RegistryDir())
	if err != nil {
		m.log.Warn("Reading the plugin registration directory failed", "dir", m.RegistryDir(), "error", err)
		return
	}
	seen := map[string]bool{}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || e.Type()&os.ModeSocket == 0 {
			continue // not a socket (links are not followed)
		}
		path := filepath.Join(m.RegistryDir(), e.Name())
		info, err := e.Info()
		if err != nil {
			continue
		}
		seen[path] = true
		m.mu.Lock()
		st := m.sockets[path]
		due := st == nil || !st.mod.Equal(info.ModTime()) || st.driver == "" && time.Now().After(st.retryAt)
		m.mu.Unlock()
		if due {
			m.registerSocket(ctx, path, info.ModTime())
		}
	}
	m.mu.Lock()
	var gone []string
	for path, st := range m.sockets {
		if !seen[path] {
			delete(m.sockets, path)
			if st.driver != "" {
				gone = append(gone, st.driver)
			}
		}
	}
	m.mu.Unlock()
	for _, name := range gone {
		m.deregister(ctx, name)
	}
}

// registerSocket asks the plugin behind a registration socket what it is,
// registers it, and tells it the outcome, as the plugin watcher does.
func (m *Manager) registerSocket(ctx context.Context, path string, mod time.Time) {
	st := &socketState{mod: mod, retryAt: time.Now().Add(retryPeriod)}
	defer func() {
		m.mu.Lock()
		m.sockets[path] = st
		m.mu.Unlock()
	}()
	conn, err := grpc.NewClient("unix:"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		m.log.Warn("Connecting to a plugin registration socket failed", "socket", path, "error", err)
		return
	}
	defer conn.Close()
	reg := registerapi.NewRegistrationClient(conn)
	// A socket just bound may not listen yet: wait a little for it, but
	// not so long that a stale socket holds up the others.
	gctx, gcancel := context.WithTimeout(ctx, 2*time.Second)
	info, err := reg.GetInfo(gctx, &registerapi.InfoRequest{}, grpc.WaitForReady(true))
	gcancel()
	if err != nil {
		m.log.Warn("Plugin registration: GetInfo failed; retrying", "socket", path, "error", err)
		return
	}
	cctx, cancel := context.WithTimeout(ctx, infoTimeout)
	defer cancel()
	err = m.register(ctx, info, path)
	status := &registerapi.RegistrationStatus{PluginRegistered: err == nil}
	if err != nil {
		status.Error = err.Error()
		m.log.Warn("Plugin registration refused", "socket", path, "plugin", info.GetName(), "error", err)
	} else {
		st.driver = info.GetName()
		m.log.Info("CSI driver registered", "driver", info.GetName(), "socket", path)
	}
	if _, nerr := reg.NotifyRegistrationStatus(cctx, status); nerr != nil {
		m.log.Warn("Plugin registration: NotifyRegistrationStatus failed", "plugin", info.GetName(), "error", nerr)
	}
}

// register checks what a plugin says of itself, connects to its CSI
// endpoint, and records the driver on the node.
func (m *Manager) register(ctx context.Context, info *registerapi.PluginInfo, socket string) error {
	if info.GetType() != registerapi.CSIPlugin {
		return fmt.Errorf("plugin type %q: kubelet-lite registers %s plugins through this directory (device plugins use device-plugins/kubelet.sock)", info.GetType(), registerapi.CSIPlugin)
	}
	name := info.GetName()
	if err := checkDriverName(name); err != nil {
		return err
	}
	if !slices.ContainsFunc(info.GetSupportedVersions(), csiV1) {
		return fmt.Errorf("driver %s supports CSI versions %v: kubelet-lite speaks CSI 1.x", name, info.GetSupportedVersions())
	}
	endpoint := strings.TrimPrefix(info.GetEndpoint(), "unix://")
	if endpoint == "" {
		endpoint = socket // the registration socket serves CSI too
	}
	if !filepath.IsAbs(endpoint) || filepath.Clean(endpoint) != endpoint {
		return fmt.Errorf("driver %s: endpoint %q: must be an absolute, clean path to a unix socket", name, info.GetEndpoint())
	}
	if st, err := os.Stat(endpoint); err != nil || st.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("driver %s: endpoint %s: not a unix socket", name, endpoint)
	}
	d, err := dialDriver(ctx, name, endpoint)
	if err != nil {
		return err
	}
	if err := m.recordDriver(ctx, d); err != nil {
		d.close()
		return err
	}
	m.mu.Lock()
	old := m.drivers[name]
	m.drivers[name] = d
	m.mu.Unlock()
	if old != nil {
		old.close() // re-registered (a restarted plugin): the newest wins
	}
	return nil
}

// csiV1 accepts "1", "1.x" and "1.x.y", with or without a leading v.
func csiV1(v string) bool {
	v = strings.TrimPrefix(v, "v")
	return v == "1" || strings.HasPrefix(v, "1.")
}

// recordDriver writes a driver onto the Node (its node ID in the nodeid
// annotation, its topology as labels) and into the CSINode.
func (m *Manager) recordDriver(ctx context.Context, d *driver) error {
	for k, v := range d.topology {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return fmt.Errorf("driver %s: topology key %q: %s", d.name, k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return fmt.Errorf("driver %s: topology value %q: %s", d.name, v, strings.Join(errs, "; "))
		}
	}
	if m.api == nil {
		return nil
	}
	var clash error
	err := m.api.UpdateNode(ctx, m.node, func(n *corev1.Node) bool {
		clash = nil
		ids := map[string]string{}
		if raw := n.Annotations[nodeIDAnnotation]; raw != "" {
			_ = json.Unmarshal([]byte(raw), &ids) // a damaged annotation is rewritten
		}
		changed := ids[d.name] != d.nodeID
		ids[d.name] = d.nodeID
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		for k, v := range d.topology {
			if cur, ok := n.Labels[k]; ok && cur != v {
				// Upstream refuses the collision too: the scheduler
				// would place volumes by the wrong value.
				clash = fmt.Errorf("driver %s: topology %s=%s: the Node's label says %s", d.name, k, v, cur)
				return false
			}
			if _, ok := n.Labels[k]; !ok {
				n.Labels[k], changed = v, true
			}
		}
		if changed {
			raw, _ := json.Marshal(ids)
			if n.Annotations == nil {
				n.Annotations = map[string]string{}
			}
			n.Annotations[nodeIDAnnotation] = string(raw)
		}
		return changed
	})
	if err == nil {
		err = clash
	}
	if err != nil {
		return fmt.Errorf("record driver %s on the Node: %w", d.name, err)
	}
	entry := storagev1.CSINodeDriver{Name: d.name, NodeID: d.nodeID, TopologyKeys: slices.Sorted(maps.Keys(d.topology))}
	if d.maxVols > 0 {
		n := int32(min(d.maxVols, math.MaxInt32))
		entry.Allocatable = &storagev1.VolumeNodeResources{Count: &n}
	}
	err = m.api.UpdateCSINode(ctx, m.node, func(c *storagev1.CSINode) bool {
		i := slices.IndexFunc(c.Spec.Drivers, func(x storagev1.CSINodeDriver) bool { return x.Name == d.name })
		if i >= 0 {
			if equalDriver(c.Spec.Drivers[i], entry) {
				return false
			}
			c.Spec.Drivers[i] = entry
			return true
		}
		c.Spec.Drivers = append(c.Spec.Drivers, entry)
		return true
	})
	if err != nil {
		return fmt.Errorf("record driver %s in the CSINode: %w", d.name, err)
	}
	return nil
}

func equalDriver(a, b storagev1.CSINodeDriver) bool {
	count := func(d storagev1.CSINodeDriver) int32 {
		if d.Allocatable == nil || d.Allocatable.Count == nil {
			return -1
		}
		return *d.Allocatable.Count
	}
	return a.NodeID == b.NodeID && slices.Equal(a.TopologyKeys, b.TopologyKeys) && count(a) == count(b)
}

// deregister forgets a driver whose registration socket went away and
// takes it off the Node and the CSINode, as upstream does. Its volumes
// stay mounted; they are torn down once it registers again.
func (m *Manager) deregister(ctx context.Context, name string) {
	m.mu.Lock()
	d := m.drivers[name]
	delete(m.drivers, name)
	m.mu.Unlock()
	if d == nil {
		return
	}
	d.close()
	m.log.Info("CSI driver deregistered", "driver", name)
	if m.api == nil {
		return
	}
	err := errors.Join(
		m.api.UpdateNode(ctx, m.node, func(n *corev1.Node) bool {
			ids := map[string]string{}
			if json.Unmarshal([]byte(n.Annotations[nodeIDAnnotation]), &ids) != nil {
				return false
			}
			if _, ok := ids[name]; !ok {
				return false
			}
			delete(ids, name)
			if len(ids) == 0 {
				delete(n.Annotations, nodeIDAnnotation)
			} else {
				raw, _ := json.Marshal(ids)
				n.Annotations[nodeIDAnnotation] = string(raw)
			}
			return true
		}),
		m.api.UpdateCSINode(ctx, m.node, func(c *storagev1.CSINode) bool {
			before := len(c.Spec.Drivers)
			c.Spec.Drivers = slices.DeleteFunc(c.Spec.Drivers, func(x storagev1.CSINodeDriver) bool { return x.Name == name })
			return len(c.Spec.Drivers) != before
		}))
	if err != nil {
		m.log.Warn("Removing a deregistered CSI driver from the Node failed", "driver", name, "error", err)
	}
}
