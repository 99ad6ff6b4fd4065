// Package daemon is the agent's control plane: it loads and attaches the
// datapath, feeds sources into the change tracker, and runs the sync loop
// that drives the reconciler.
//
//	API server ──informers──> k8s.Source ─────┐
//	manifests dir ──watch──> manifests.Source ─┴─{prev,cur}──> tracker.Tracker
//	                                                              │ Take (changed Services)
//	            runner.Runner (min gap, period, retry) ──> syncer ──> reconciler ──> datapath LB maps
//	                                                          └──> metrics, health
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/hivelet/hivelet/daemon/health"
	"github.com/hivelet/hivelet/daemon/healthcheck"
	"github.com/hivelet/hivelet/daemon/k8s"
	"github.com/hivelet/hivelet/daemon/kubeclient"
	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
	"github.com/hivelet/hivelet/daemon/localendpoints"
	"github.com/hivelet/hivelet/daemon/logfields"
	"github.com/hivelet/hivelet/daemon/manifests"
	"github.com/hivelet/hivelet/daemon/masquerade"
	"github.com/hivelet/hivelet/daemon/metrics"
	"github.com/hivelet/hivelet/daemon/reconciler"
	"github.com/hivelet/hivelet/daemon/runner"
	"github.com/hivelet/hivelet/daemon/tracker"
	"github.com/hivelet/hivelet/datapath"
)

// Config is everything the agent needs to run.
type Config struct {
	ManifestsDir string
	// Kubeconfig selects the Kubernetes source; "in-cluster" uses the
	// pod's service account.
	Kubeconfig string
	// KubeAPICompression asks the API server for gzip responses.
	KubeAPICompression bool
	// APIServer ("https://10.0.0.1:6443") replaces the kubeconfig's
	// server, or the kubernetes Service's address in-cluster: the agent
	// must reach the API server without the Service it is to program.
	APIServer       string
	BPFFSDir        string
	Cgroup2         string // empty: the cgroup2 root
	MapSizes        datapath.MapSizes
	SyncPeriod      time.Duration
	MinSyncInterval time.Duration
	// HealthzAddr and MetricsAddr are listen addresses; empty disables.
	HealthzAddr string
	MetricsAddr string
	// NodeName is this node's Node object (NodePort addresses, zone).
	NodeName string
	// PodRoutes is "native" to route other nodes' pod CIDRs via their
	// InternalIPs (nodes on a shared link), "vxlan" to carry them in a
	// VXLAN overlay to those addresses, or "" / "none".
	PodRoutes string
	// Masquerade gives traffic from ClusterCIDRs to destinations outside
	// them the node's address (nftables, reconciled every SyncPeriod).
	Masquerade   bool
	ClusterCIDRs []netip.Prefix
	// Devices are where clients from outside reach NodePorts, external
	// IPs and load-balancer IPs: DevicesAuto, a comma-separated list, or
	// "" / "none" for socket LB only.
	Devices string
	// NodeIPs are this node's addresses when no API server tells them
	// (manifests source): NodePorts listen there. With an API server they
	// only pick the SNAT addresses.
	NodeIPs []netip.Addr
	// LBAlgorithm is the default for clients from outside: "random" or
	// "maglev" (Services may choose with an annotation).
	LBAlgorithm     string
	MaglevTableSize uint32
	// NATPortMin..NATPortMax is the SNAT port range (0: the default).
	NATPortMin, NATPortMax uint16
	// HealthCheckAddr is the address healthCheckNodePorts listen on
	// ("" for every address).
	HealthCheckAddr string
	// SocketLBHostOnly limits socket LB to the host's namespace; pods
	// are served per packet on their veths (service meshes, sandboxed
	// runtimes).
	SocketLBHostOnly bool
	// HostPorts serves this node's pods' hostPorts from the LB maps (with
	// an API server; needs list and watch on pods).
	HostPorts bool
	// LocalPods are the pods of the kubelet running in the same process
	// (`hivelet node`): manifests Services with a selector get them as
	// endpoints. Nil for the agent alone.
	LocalPods *localendpoints.Pods
}

// localPodsWait bounds how long the first sync waits for the kubelet to
// report the pods it adopted at start.
const localPodsWait = 30 * time.Second

// ResolveCgroup fills in the default cgroup (the cgroup2 root).
func (c *Config) ResolveCgroup() error {
	if c.Cgroup2 != "" {
		return nil
	}
	root, err := datapath.Cgroup2Root()
	c.Cgroup2 = root
	return err
}

// Run runs the agent until ctx ends. On return the programs stay attached
// and the maps stay pinned: traffic keeps flowing without the agent.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	switch {
	case cfg.ManifestsDir == "" && cfg.Kubeconfig == "":
		return errors.New("no source: pass --manifests DIR or --kubeconfig FILE")
	case cfg.ManifestsDir != "" && cfg.Kubeconfig != "":
		return errors.New("two sources: pass either --manifests or --kubeconfig, not both")
	case cfg.PodRoutes != "" && cfg.PodRoutes != "none" && cfg.PodRoutes != "native" && cfg.PodRoutes != "vxlan":
		return fmt.Errorf("--pod-routes %q: want native, vxlan or none", cfg.PodRoutes)
	case (cfg.PodRoutes == "native" || cfg.PodRoutes == "vxlan") && cfg.Kubeconfig == "":
		return fmt.Errorf("--pod-routes %s needs the Node objects: pass --kubeconfig", cfg.PodRoutes)
	case cfg.LBAlgorithm != "" && cfg.LBAlgorithm != "random" && cfg.LBAlgorithm != "maglev":
		return fmt.Errorf("--bpf-lb-algorithm %q: want random or maglev", cfg.LBAlgorithm)
	case cfg.Masquerade && len(cfg.ClusterCIDRs) == 0:
		return errors.New("--masquerade needs --cluster-cidr (the pod CIDRs of the whole cluster, e.g. 10.244.0.0/16)")
	case cfg.SyncPeriod < 0:
		return fmt.Errorf("--sync-period %s: want a positive duration (or 0: no periodic check)", cfg.SyncPeriod)
	case cfg.MaglevTableSize != 0 && !isPrime(cfg.MaglevTableSize):
		return fmt.Errorf("--bpf-lb-maglev-table-size %d: must be a prime (e.g. 251, 4093, 16381, 65521)", cfg.MaglevTableSize)
	case cfg.ManifestsDir != "":
		if st, err := os.Stat(cfg.ManifestsDir); err != nil || !st.IsDir() {
			return fmt.Errorf("manifests dir %q: not a readable directory (create it or fix --manifests)", cfg.ManifestsDir)
		}
	}
	if err := cfg.ResolveCgroup(); err != nil {
		return err
	}
	gcForLoad()
	m := metrics.New()
	setCapacity(m, cfg.MapSizes)
	hc := health.NewTracker(staleAfter(cfg.SyncPeriod))
	hcs := healthcheck.New(cfg.HealthCheckAddr, log)
	defer hcs.Close()
	s := &syncer{metrics: m, health: hc, log: log, hcs: hcs}
	// No periodic full syncs in the runner: verifyLoop checks the maps
	// every SyncPeriod without holding changes up.
	r := runner.New(s.sync, cfg.MinSyncInterval, 0)
	s.tracker = tracker.New(func() { hc.Queued(); r.Trigger() })
	s.tracker.SetDefaultMaglev(cfg.LBAlgorithm == "maglev")
	if cfg.ManifestsDir != "" && len(cfg.NodeIPs) > 0 {
		s.tracker.OnNodeUpdate(&lb.Node{Name: cfg.NodeName, Addrs: cfg.NodeIPs})
	}

	// The source lists everything while the datapath loads: at start both
	// take a while, and the first sync needs both. Every source has listed
	// everything before that sync, so a restart never deletes a service
	// only because it was not read yet.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	listed := make(chan error, 1)
	go func() { listed <- startSource(ctx, cfg, s.tracker, log) }()

	if err := datapath.EnsureBPFFS(cfg.BPFFSDir); err != nil {
		return err
	}
	unlock, err := datapath.LockPins(ctx, cfg.BPFFSDir, func() {
		log.Warn("Another agent holds the pin directory; waiting for it to stop", logfields.BPFFS, cfg.BPFFSDir)
	})
	if err != nil {
		return err
	}
	defer unlock()
	dp, err := datapath.Load(datapath.Config{BPFFSDir: cfg.BPFFSDir, Sizes: cfg.MapSizes, MaglevTableSize: cfg.MaglevTableSize})
	if err != nil {
		return err
	}
	defer dp.Close()
	if err := dp.AttachCgroup(cfg.Cgroup2); err != nil {
		return err
	}
	log.Info("Socket LB attached", logfields.Cgroup, cfg.Cgroup2, logfields.BPFFS, cfg.BPFFSDir)
	s.rec = reconciler.New(dp.LBMap(), log)
	if cfg.MaglevTableSize != 0 {
		s.rec.SetMaglevTableSize(int(cfg.MaglevTableSize))
	}
	registerPacketCounters(m, dp)
	if err := startHostDatapath(ctx, cfg, dp, m, log); err != nil {
		return err
	}
	if err := startPodLB(ctx, cfg, dp, log); err != nil {
		return err
	}
	if cfg.Masquerade {
		if err := masquerade.Apply(cfg.ClusterCIDRs); err != nil {
			return err
		}
		log.Info("Masquerading pod traffic that leaves the cluster", "clusterCIDRs", cfg.ClusterCIDRs)
		go keepMasquerade(ctx, cfg, log)
	}

	if err := serve(ctx, log, cfg.HealthzAddr, "healthz", healthMux(hc)); err != nil {
		return err
	}
	if err := serve(ctx, log, cfg.MetricsAddr, "metrics", metricsMux(m)); err != nil {
		return err
	}
	if err := <-listed; err != nil {
		return err
	}
	go s.verifyLoop(ctx, cfg.SyncPeriod, r.Trigger)
	r.Run(ctx)
	return nil
}

// keepMasquerade writes the masquerade table again every sync period (a
// whole replacement, so what drifted comes back).
func keepMasquerade(ctx context.Context, cfg Config, log *slog.Logger) {
	period := cfg.SyncPeriod
	if period <= 0 {
		period = time.Minute
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := masquerade.Apply(cfg.ClusterCIDRs); err != nil {
				log.Warn("Rewriting the masquerade table failed; retrying", logfields.Error, err)
			}
		}
	}
}

func startSource(ctx context.Context, cfg Config, tr *tracker.Tracker, log *slog.Logger) error {
	if cfg.ManifestsDir != "" {
		var h manifests.Handler = tr
		var local *localendpoints.Controller
		if cfg.LocalPods != nil {
			local = localendpoints.New(tr, cfg.LocalPods, cfg.NodeName, log)
			h = local
		}
		src := manifests.New(cfg.ManifestsDir, h, log)
		if err := src.Start(ctx); err != nil {
			return err
		}
		if n := len(src.Errors()); n > 0 {
			log.Warn("Some manifests were rejected; serving every valid one", logfields.Dir, cfg.ManifestsDir, logfields.Count, n)
		}
		if local != nil {
			local.Start(ctx, localPodsWait)
		}
		return nil
	}
	restCfg, err := kubeclient.Config(cfg.Kubeconfig, "hivelet-agent", cfg.KubeAPICompression, cfg.APIServer)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("create Kubernetes client: %w", err)
	}
	if cfg.PodRoutes == "native" || cfg.PodRoutes == "vxlan" {
		if err := startPodRoutes(ctx, client, cfg, log); err != nil {
			return err
		}
	}
	log.Info("Waiting for the API server's Services and EndpointSlices")
	src := k8s.New(client, cfg.NodeName, tr, log)
	if cfg.HostPorts {
		src.EnableHostPorts()
	}
	return src.Start(ctx)
}

// staleAfter is how long a change may wait for a sync before /healthz
// fails: two sync periods, as kube-proxy, or a minute without a period.
func staleAfter(period time.Duration) time.Duration {
	if period <= 0 {
		return time.Minute
	}
	return 2 * period
}

func isPrime(n uint32) bool {
	if n < 2 {
		return false
	}
	for d := uint32(2); d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}
