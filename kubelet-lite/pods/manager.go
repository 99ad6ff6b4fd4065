// Package pods runs the pods bound to this node through CRI: a worker per
// pod brings the runtime to the pod's spec (sandbox, init containers in
// order, containers with restart policy and crash-loop back-off,
// graceful termination), a relist of the runtime every second (PLEG)
// wakes the workers whose containers changed, and each worker writes the
// pod's status to the API server when it changes.
package pods

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/hivelet/hivelet/kubelet-lite/cri"
	"github.com/hivelet/hivelet/kubelet-lite/kubeapi"
	"github.com/hivelet/hivelet/kubelet-lite/volumes"
)

// Config is what the pod manager needs to know about the node.
type Config struct {
	NodeName   string
	NodeIPs    []netip.Addr
	RootDir    string
	CgroupRoot string
	// CgroupDriver is DriverCgroupfs (the default) or DriverSystemd.
	CgroupDriver string
	// SeccompDefault runs containers that ask for no seccomp profile
	// under the runtime's default one (KubeletConfiguration
	// seccompDefault) instead of unconfined.
	SeccompDefault bool
	// AllowedUnsafeSysctls are sysctls (or prefixes ending in "*") pods
	// may set beyond the safe set.
	AllowedUnsafeSysctls []string
	// ClusterDNS, ClusterDomain and ResolvConf are the upstream
	// clusterDNS, clusterDomain and resolvConf: the resolvers and search
	// domains of ClusterFirst pods, and the node's resolver file that
	// Default pods (and ClusterFirst ones without ClusterDNS) get.
	ClusterDNS    []netip.Addr
	ClusterDomain string
	ResolvConf    string
	// PodLogsDir holds the pods' container logs (upstream podLogsDir,
	// /var/log/pods); ContainerLogMaxSize and ContainerLogMaxFiles rotate
	// them (0: no rotation).
	PodLogsDir           string
	ContainerLogMaxSize  int64
	ContainerLogMaxFiles int
	// Allocatable is what the node offers pods: a container's limit it
	// does not set reads as this in the downward API.
	Allocatable corev1.ResourceList
	// KubepodsLimits are the kubepods cgroup's CPU (its share) and, with
	// --enforce-node-allocatable=pods, memory (its limit); nil: none.
	KubepodsLimits corev1.ResourceList
	// ContainerGC is the dead container policy; nil: upstream's default.
	ContainerGC *ContainerGC
	// Devices are the device plugins' resources; nil: none.
	Devices Devices
	// Pressure lists the pressure conditions the node is under (the
	// eviction manager's); nil: none is checked at admission.
	Pressure func() []corev1.NodeConditionType
	// CSI mounts CSI and PersistentVolumeClaim volumes; nil: none.
	CSI CSIVolumes
	// Node returns the Node as last read (nil before it is): admission
	// checks its labels and taints.
	Node func() *corev1.Node
	// OnChange is called, without blocking, after a pod's status changed,
	// a pod was told to stop, or its worker ended (`hivelet node`: the
	// agent's endpoints follow); nil: nobody listens.
	OnChange func()
}

// Manager owns the pod workers.
type Manager struct {
	cfg    Config
	rt     *cri.Client
	client *kubeapi.Client // nil without an API server
	log    *slog.Logger

	mu      sync.Mutex
	workers map[types.UID]*worker // guarded by mu
	// admitMu makes admissions one at a time (admitWorker).
	admitMu sync.Mutex
	sources map[string]bool // guarded by mu: source name → has listed everything
	probes  *prober
	writer  *volumes.Writer
	hostDNS resolvConf // the node's --resolv-conf, read once at start
	// lastRelist is when the runtime was last listed; guarded by mu.
	lastRelist time.Time
	events     chan *corev1.Event // to sendEvents; nil without an API server
}

// NewManager returns a Manager; client may be nil (static pods only).
func NewManager(cfg Config, rt *cri.Client, client *kubeapi.Client, log *slog.Logger) *Manager {
	if cfg.CgroupRoot == "" {
		cfg.CgroupRoot = "/"
	}
	if cfg.CgroupDriver == "" {
		cfg.CgroupDriver = DriverCgroupfs
	}
	m := &Manager{cfg: cfg, rt: rt, client: client, log: log, workers: map[types.UID]*worker{}, sources: map[string]bool{},
		writer: volumes.NewWriter()}
	m.probes = newProber(m)
	if client != nil {
		m.events = make(chan *corev1.Event, eventQueue)
		go m.sendEvents()
	}
	var err error
	if m.hostDNS, err = readResolvConf(cfg.ResolvConf); err != nil {
		log.Warn("Pods with dnsPolicy Default get no resolver", "error", err)
	}
	return m
}

func (m *Manager) hostIP() string {
	if len(m.cfg.NodeIPs) == 0 {
		return ""
	}
	return m.cfg.NodeIPs[0].String()
}

// Update hands a pod's latest version to its worker, starting one for a
// new pod.
func (m *Manager) Update(pod *corev1.Pod) {
	m.mu.Lock()
	w := m.workers[pod.UID]
	if w == nil {
		w = newWorker(m, pod)
		m.workers[pod.UID] = w
		go w.run()
	}
	m.mu.Unlock()
	w.update(pod)
}

// Remove tells a pod's worker its pod is gone from the source: it
// terminates the pod (gracefully when the pod was deleted gracefully).
func (m *Manager) Remove(uid types.UID) {
	m.mu.Lock()
	w := m.workers[uid]
	m.mu.Unlock()
	if w != nil {
		w.remove()
	}
}

func (m *Manager) forget(uid types.UID) {
	m.mu.Lock()
	delete(m.workers, uid)
	m.mu.Unlock()
	m.changed()
}

func (m *Manager) changed() {
	if m.cfg.OnChange != nil {
		m.cfg.OnChange()
	}
}

// Synced is true once every source has handed over its pods and each of
// them has a status computed with its readiness probes' first results:
// after a restart, the pods still running have been adopted and their
// readiness is known again.
func (m *Manager) Synced() bool {
	if !m.allSourcesReady() {
		return false
	}
	m.mu.Lock()
	ws := make([]*worker, 0, len(m.workers))
	for _, w := range m.workers {
		ws = append(ws, w)
	}
	m.mu.Unlock()
	for _, w := range ws {
		if !w.isSettled() {
			return false
		}
	}
	return true
}

// SourceReady records that a source has handed over every pod it has, so
// runtime leftovers of other pods can be removed.
func (m *Manager) SourceReady(name string) {
	m.mu.Lock()
	m.sources[name] = true
	m.mu.Unlock()
}

// Sources registers the source names that must all be ready before
// leftovers are collected.
func (m *Manager) Sources(names ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range names {
		if _, ok := m.sources[n]; !ok {
			m.sources[n] = false
		}
	}
}

func (m *Manager) allSourcesReady() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ready := range m.sources {
		if !ready {
			return false
		}
	}
	return len(m.sources) > 0
}

// specHash pins a container to its spec without its resources: a change
// of those is a resize, done in place (resize.go).
func specHash(c *corev1.Container) string {
	cp := *c
	cp.Resources = corev1.ResourceRequirements{}
	return fullSpecHash(&cp)
}

// fullSpecHash is the hash of the whole spec, which kubelet-lite wrote
// (as annotationHash) before resizes were done in place: containers it
// created then are compared with it.
func fullSpecHash(c *corev1.Container) string {
	b, _ := json.Marshal(c)
	h := fnv.New64a()
	h.Write(b)
	return fmt.Sprintf("%x", h.Sum64())
}

// RunningPods are the pods this kubelet runs, each with the status it
// last wrote (the kubelet API's /pods). A pod told to stop by its source
// carries a deletion time even when the source had none to give (a
// static pod whose file went).
func (m *Manager) RunningPods() []corev1.Pod {
	m.mu.Lock()
	ws := make([]*worker, 0, len(m.workers))
	for _, w := range m.workers {
		ws = append(ws, w)
	}
	m.mu.Unlock()
	out := make([]corev1.Pod, 0, len(ws))
	for _, w := range ws {
		w.mu.Lock()
		p := w.pod.DeepCopy()
		if w.removed && p.DeletionTimestamp == nil {
			p.DeletionTimestamp = &metav1.Time{Time: w.removedAt}
		}
		w.mu.Unlock()
		if st := w.statusSnapshot(); st != nil {
			p.Status = *st
		}
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b corev1.Pod) int { return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name) })
	return out
}
