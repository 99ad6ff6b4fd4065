package kubeletlite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"

	"github.com/hivelet/hivelet/kubelet-lite/cri"
	"github.com/hivelet/hivelet/kubelet-lite/csi"
	"github.com/hivelet/hivelet/kubelet-lite/deviceplugin"
	"github.com/hivelet/hivelet/kubelet-lite/eviction"
	"github.com/hivelet/hivelet/kubelet-lite/imagegc"
	"github.com/hivelet/hivelet/kubelet-lite/kubeapi"
	"github.com/hivelet/hivelet/kubelet-lite/metrics"
	"github.com/hivelet/hivelet/kubelet-lite/node"
	"github.com/hivelet/hivelet/kubelet-lite/pods"
	"github.com/hivelet/hivelet/kubelet-lite/stats"
)

// Config is `hivelet kubelet`'s configuration; flags keep the upstream
// kubelet's names.
type Config struct {
	Kubeconfig string
	// PodObserver learns of the pods this kubelet runs, as they change
	// (`hivelet node`: the agent serves them behind Services); nil: none.
	PodObserver PodObserver
	// BootstrapKubeconfig holds credentials that may only ask for the
	// node's client certificate: used when Kubeconfig does not exist yet
	// (or its certificate expired), which is then written (TLS
	// bootstrapping). RotateCertificates renews the client certificate
	// before it expires; CertDir keeps the pairs (default <root-dir>/pki).
	BootstrapKubeconfig string
	RotateCertificates  bool
	CertDir             string
	// KubeAPICompression asks the API server for gzip responses.
	KubeAPICompression bool
	RuntimeEndpoint    string
	PodManifestPath    string
	NodeName           string
	NodeIPs            []netip.Addr
	RootDir            string
	CgroupRoot         string
	// CgroupDriver is cgroupfs or systemd; the runtime's own wins.
	CgroupDriver string
	MaxPods      int
	// EvictionHard are the hard eviction thresholds (upstream's
	// defaults unless given); SystemReserved and KubeReserved what the
	// node keeps from pods ("cpu": "100m"). All three come off
	// allocatable.
	EvictionHard []eviction.Threshold
	// EvictionSoft thresholds evict once they have held for their
	// EvictionSoftGracePeriod ("memory.available": "1m30s"), giving the
	// pod at most EvictionMaxPodGracePeriod seconds;
	// EvictionMinimumReclaim ("memory.available": "500Mi") is freed
	// beyond a threshold before its pressure ends.
	EvictionSoft              []eviction.Threshold
	EvictionSoftGracePeriod   map[string]string
	EvictionMaxPodGracePeriod int
	EvictionMinimumReclaim    map[string]string
	// EvictionPressureTransitionPeriod is how long a pressure condition
	// holds after its signal last met a threshold (5 min upstream).
	EvictionPressureTransitionPeriod time.Duration
	SystemReserved, KubeReserved     map[string]string
	// ImageGC is the image garbage collector's policy (upstream's
	// defaults unless given); ImageGCPeriod how often it runs (5 min;
	// tests shorten it).
	ImageGC       imagegc.Policy
	ImageGCPeriod time.Duration
	// EnforceNodeAllocatable: "pods" limits the kubepods cgroup's memory
	// to capacity less the reservations (upstream's default); "none"
	// does not.
	EnforceNodeAllocatable []string
	// ContainerGC is the dead container policy (nil: upstream's).
	ContainerGC *pods.ContainerGC
	PodCIDR     string
	// HealthzAddr serves /healthz (the upstream kubelet's 127.0.0.1:10248);
	// empty disables.
	HealthzAddr string
	// Address and Port are where the kubelet API (container logs)
	// listens, over TLS for clients with a certificate from ClientCAFile;
	// no CA file, no kubelet API.
	Address      string
	Port         int
	ClientCAFile string
	// AuthenticationTokenWebhook accepts bearer tokens on the kubelet API
	// (TokenReview); AuthorizationMode is AlwaysAllow or Webhook
	// (SubjectAccessReview), the upstream flags.
	AuthenticationTokenWebhook bool
	AuthorizationMode          string
	// AnonymousAuth lets requests with no credentials through as
	// system:anonymous (group system:unauthenticated), for the
	// authorizer to judge. Off by default: kubeadm's setting, not the
	// upstream flag's.
	AnonymousAuth bool
	// TLSCertFile and TLSPrivateKeyFile serve the kubelet API; empty:
	// a self-signed certificate.
	TLSCertFile, TLSPrivateKeyFile string
	// SeccompDefault and AllowedUnsafeSysctls are the upstream
	// seccompDefault and allowedUnsafeSysctls.
	SeccompDefault       bool
	AllowedUnsafeSysctls []string
	// PodLogsDir, ContainerLogMaxSize ("10Mi") and ContainerLogMaxFiles:
	// where container logs go and how they rotate.
	PodLogsDir           string
	ContainerLogMaxSize  string
	ContainerLogMaxFiles int
	// ClusterDNS, ClusterDomain and ResolvConf: name resolution of pods.
	ClusterDNS    []netip.Addr
	ClusterDomain string
	ResolvConf    string
	// flagSet names the flags given on the command line: they win over
	// the config file (an empty or zero flag value cannot tell).
	flagSet map[string]bool
}

// FlagsGiven records which flags the command line set.
func (c *Config) FlagsGiven(names ...string) {
	c.flagSet = map[string]bool{}
	for _, n := range names {
		c.flagSet[n] = true
	}
}

// logRotation checks --container-log-max-size and -files: the upstream
// defaults are 10Mi and 5; "0" turns rotation off; fewer than 2 files
// cannot rotate.
func logRotation(cfg Config) (int64, int, error) {
	size, files := "10Mi", 5
	if cfg.ContainerLogMaxSize != "" {
		size = cfg.ContainerLogMaxSize
	}
	if cfg.ContainerLogMaxFiles != 0 {
		files = cfg.ContainerLogMaxFiles
	}
	q, err := resource.ParseQuantity(size)
	if err != nil || q.Sign() < 0 {
		return 0, 0, fmt.Errorf("--container-log-max-size %q: want a size such as 10Mi", size)
	}
	if files < 2 {
		return 0, 0, fmt.Errorf("--container-log-max-files %d: at least 2 (the live log and one rotated)", files)
	}
	return q.Value(), files, nil
}

// enforcement reads --enforce-node-allocatable: true for "pods".
func enforcement(vals []string) (bool, error) {
	pods := false
	for _, v := range vals {
		switch v {
		case "pods":
			pods = true
		case "none", "":
		default:
			return false, fmt.Errorf("--enforce-node-allocatable %s: only pods or none (the reserved cgroups are not managed)", v)
		}
	}
	return pods, nil
}

// reservations reads what the node keeps from pods.
func reservations(cfg Config) (node.Reserved, error) {
	sys, err := node.ParseReserved("--system-reserved", cfg.SystemReserved)
	if err != nil {
		return node.Reserved{}, err
	}
	kube, err := node.ParseReserved("--kube-reserved", cfg.KubeReserved)
	if err != nil {
		return node.Reserved{}, err
	}
	return node.Reserved{System: sys, Kube: kube, Hard: cfg.EvictionHard}, nil
}

// PodObserver is told where to read the kubelet's pods, and when they
// changed; Changed must not block.
type PodObserver interface {
	SetSource(list func() []corev1.Pod, synced func() bool)
	Changed()
}

// Run runs kubelet-lite until ctx ends. Containers keep running when it
// stops; a restarted kubelet-lite adopts them.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if cfg.Kubeconfig == "" && cfg.PodManifestPath == "" {
		return errors.New("no pod source: pass --kubeconfig FILE and/or --pod-manifest-path DIR")
	}
	if cfg.RuntimeEndpoint == "" {
		cfg.RuntimeEndpoint = cri.DefaultEndpoint
	}
	if err := os.MkdirAll(cfg.RootDir, 0o750); err != nil {
		return fmt.Errorf("create --root-dir: %w", err)
	}
	logMax, logFiles, err := logRotation(cfg)
	if err != nil {
		return err
	}
	rt, err := cri.Dial(cfg.RuntimeEndpoint)
	if err != nil {
		return err
	}
	defer rt.Close()
	if cfg.CgroupDriver, err = cgroupDriver(ctx, cfg.CgroupDriver, cfg.CgroupRoot, rt.CgroupDriver, log); err != nil {
		return err
	}
	reserved, err := reservations(cfg)
	if err != nil {
		return err
	}
	evictCfg, err := evictionConfig(cfg)
	if err != nil {
		return err
	}
	enforcePods, err := enforcement(cfg.EnforceNodeAllocatable)
	if err != nil {
		return err
	}
	if cfg.ImageGC == (imagegc.Policy{}) {
		cfg.ImageGC = imagegc.DefaultPolicy // not "remove every unused image at 0 % usage"
	}
	if err := cfg.ImageGC.Validate(); err != nil {
		return err
	}
	if cfg.ImageGCPeriod <= 0 {
		cfg.ImageGCPeriod = imagegc.Period
	}
	metrics.NodeName.Set(1, cfg.NodeName)
	var client *kubeapi.Client
	if cfg.Kubeconfig != "" {
		if client, err = apiClient(ctx, cfg, log); err != nil {
			return err
		}
	}
	devices := deviceplugin.New(filepath.Join(cfg.RootDir, "device-plugins"), log)
	if err := devices.Start(ctx); err != nil {
		return err
	}
	var storage csi.API
	if client != nil {
		storage = csi.NewAPI(client)
	}
	volumePlugins := csi.New(cfg.RootDir, cfg.NodeName, storage, log)
	if err := volumePlugins.Start(ctx); err != nil {
		return fmt.Errorf("start the CSI plugin watcher: %w", err)
	}
	// The eviction manager needs the pod manager, which needs its
	// pressure conditions: they meet through this pointer.
	var evictions atomic.Pointer[eviction.Manager]
	pressure := func() []corev1.NodeConditionType {
		if em := evictions.Load(); em != nil {
			return em.Conditions()
		}
		return nil
	}
	var keeper *node.Keeper
	nodeObj := func() *corev1.Node { return nil }
	if client != nil {
		keeper = node.New(client, node.Config{Name: cfg.NodeName, IPs: cfg.NodeIPs, RootDir: cfg.RootDir, PodCIDR: cfg.PodCIDR,
			MaxPods: cfg.MaxPods, Reserved: reserved, SoftEviction: cfg.EvictionSoft, RuntimeReady: rt.Ready, RuntimeVersion: rt.Version, Images: rt.NodeImages, Extended: devices.Resources, Pressure: pressure}, log)
		nodeObj = keeper.Node
	}
	var onChange func()
	if cfg.PodObserver != nil {
		onChange = cfg.PodObserver.Changed
	}
	m := pods.NewManager(pods.Config{OnChange: onChange, Node: nodeObj, Devices: devices, CSI: volumePlugins, Pressure: pressure, ContainerGC: cfg.ContainerGC, KubepodsLimits: node.KubepodsLimits(cfg.RootDir, reserved, enforcePods), NodeName: cfg.NodeName, NodeIPs: cfg.NodeIPs, RootDir: cfg.RootDir, CgroupRoot: cfg.CgroupRoot, CgroupDriver: cfg.CgroupDriver,
		SeccompDefault: cfg.SeccompDefault, AllowedUnsafeSysctls: cfg.AllowedUnsafeSysctls,
		ClusterDNS: cfg.ClusterDNS, ClusterDomain: cfg.ClusterDomain, ResolvConf: cfg.ResolvConf,
		PodLogsDir: cfg.PodLogsDir, ContainerLogMaxSize: logMax, ContainerLogMaxFiles: logFiles, Allocatable: node.Allocatable(cfg.RootDir, reserved, cfg.MaxPods)}, rt, client, log)
	if cfg.PodObserver != nil {
		cfg.PodObserver.SetSource(m.RunningPods, m.Synced)
	}
	if client != nil {
		go func() {
			for delay := time.Second; ; delay = min(2*delay, 30*time.Second) {
				err := keeper.Register(ctx)
				if err == nil {
					break
				}
				log.Warn("Node registration failed; retrying", "error", err, "retryIn", delay)
				select {
				case <-ctx.Done():
					return
				case <-time.After(delay):
				}
			}
			log.Info("Node registered", "node", cfg.NodeName)
			keeper.Run(ctx)
		}()
		go func() {
			if err := m.RunAPI(ctx); err != nil && ctx.Err() == nil {
				log.Error("Watching pods failed", "error", err)
			}
		}()
	}
	if cfg.PodManifestPath != "" {
		go m.RunStatic(ctx, cfg.PodManifestPath)
	}
	go m.RunLogRotation(ctx)
	imageGC := imagegc.New(rt, cfg.ImageGC, imagegc.RuntimeFs(rt, cfg.RootDir), log)
	go imageGC.Run(ctx, cfg.ImageGCPeriod)
	evictionMgr := eviction.NewManager(evictCfg, eviction.Sources{Pods: m, Filesystems: filesystems(rt, cfg.RootDir),
		MemoryUsage: func(ctx context.Context) (map[types.UID]eviction.PodUsage, error) {
			mem, _, err := stats.ContainerUsage(ctx, rt)
			return mem, err
		},
		DiskUsage: func(ctx context.Context) (map[types.UID]eviction.PodUsage, error) {
			_, rootfs, err := stats.ContainerUsage(ctx, rt)
			return mergeUsage(rootfs, m.LocalUsage()), err
		},
		ReclaimImages: imageGC.Free,
	}, log)
	evictions.Store(evictionMgr)
	go evictionMgr.Run(ctx)
	if cfg.HealthzAddr != "" {
		if err := serveHealthz(ctx, cfg.HealthzAddr, m, rt, log); err != nil {
			return err
		}
	}
	if err := serveKubelet(ctx, cfg, rt, client, m, log); err != nil {
		return err
	}
	// A node agent's footprint should stay near its live heap: a tighter
	// GC target costs little CPU at a kubelet's allocation rate (unless
	// the operator chose one with GOGC).
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(25)
	}
	log.Info("kubelet-lite running", "node", cfg.NodeName, "runtime", cfg.RuntimeEndpoint)
	m.Run(ctx)
	return nil
}

// serveHealthz answers /healthz: 200 "ok" while the runtime answers and
// the relist is recent, 500 with the reason otherwise.
func serveHealthz(ctx context.Context, addr string, m *pods.Manager, rt *cri.Client, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on --healthz-bind-address %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		err := m.Healthy()
		if err == nil {
			err = rt.Ready(r.Context())
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	go func() { _ = srv.Serve(ln) }()
	log.Info("Serving healthz", "addr", ln.Addr().String())
	return nil
}
