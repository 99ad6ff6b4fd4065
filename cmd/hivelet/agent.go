package main

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"github.com/hivelet/hivelet/cmd/internal/cli"
	"github.com/hivelet/hivelet/daemon"
	"github.com/hivelet/hivelet/daemon/kubeproxy"
	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
	"github.com/hivelet/hivelet/daemon/logfields"
	"github.com/hivelet/hivelet/daemon/masquerade"
	"github.com/hivelet/hivelet/datapath"
)

func newAgentCmd() *cobra.Command {
	cfg := daemon.Config{MapSizes: datapath.DefaultMapSizes}
	var (
		cleanup, cleanupKubeProxy bool
		configFile                string
		logLevel, logForm         string
	)
	cmd := &cobra.Command{
		Use:   "agent (--manifests DIR | --kubeconfig FILE) [--bpffs DIR] [--cgroup2 PATH]",
		Short: "Run the service proxy agent (or remove everything it installed, with --cleanup)",
		Long: `Run the service proxy agent.

The agent loads the socket load-balancing programs, attaches them to a cgroup
v2 directory (every process below it gets its Service connections balanced),
and keeps the pinned BPF maps in line with the Services and EndpointSlices it
reads from its source: an API server (--kubeconfig, or "in-cluster"), or a
directory of Kubernetes YAML or JSON (--manifests), watched for changes.
Invalid objects are reported and their last valid version keeps serving.

Maps and links are pinned under --bpffs, so traffic keeps flowing while the
agent is stopped or restarting; a restarted agent adopts what it finds and
writes only the difference.

With --cleanup, the agent detaches every program and removes every map and
link it pinned, then exits.

With --cleanup-kube-proxy, it removes what kube-proxy left (its iptables
chains and the jumps into them, its nftables tables), then exits. Moving a
node from kube-proxy: start the agent, stop kube-proxy, then run this.`,
		Example: `  hivelet agent --kubeconfig /etc/kubernetes/hivelet.kubeconfig
  hivelet agent --manifests /etc/hivelet/manifests
  hivelet agent --manifests ./examples --cgroup2 /sys/fs/cgroup/unified/demo --bpffs /sys/fs/bpf/demo
  hivelet agent --cleanup
  hivelet agent --cleanup-kube-proxy`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.ApplyConfigFile(cmd.Flags(), configFile); err != nil {
				return err
			}
			log, err := cli.NewLogger(logLevel, logForm)
			if err != nil {
				return err
			}
			if cleanupKubeProxy {
				// One shot, after hivelet serves the node and kube-proxy
				// is gone: what it left would still catch traffic first.
				r, err := kubeproxy.Cleanup()
				log.Info("Removed kube-proxy's leftovers", "iptablesChains", r.Chains, "iptablesJumps", r.Jumps, "nftablesTables", r.Tables)
				return err
			}
			if cleanup {
				if err := errors.Join(datapath.Cleanup(cfg.BPFFSDir), masquerade.Remove()); err != nil {
					return err
				}
				log.Info("Removed hivelet programs, links and maps", logfields.BPFFS, cfg.BPFFSDir)
				return nil
			}
			klog.SetSlogLogger(log) // client-go logs through klog
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return daemon.Run(ctx, cfg, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.ManifestsDir, "manifests", "", "directory of Service and EndpointSlice manifests (YAML or JSON) to serve")
	f.StringVar(&configFile, "config", "", "YAML file of flag settings (flag name: value; lists as YAML lists); flags on the command line win (the DaemonSet's ConfigMap)")
	f.StringVar(&cfg.APIServer, "k8s-api-server", "", "the API server's URL, replacing the kubeconfig's or, in-cluster, the kubernetes Service's (which the agent has not programmed yet when it starts)")
	f.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig file of the API server to watch, or \"in-cluster\" for the pod's service account")
	cli.KubeAPICompression(f, &cfg.KubeAPICompression)
	f.BoolVar(&cleanupKubeProxy, "cleanup-kube-proxy", false, "remove kube-proxy's iptables chains (legacy and nft, IPv4 and IPv6) and nftables tables from this network namespace, as `kube-proxy --cleanup` does, and exit; run it once hivelet serves the node and kube-proxy is stopped")
	f.BoolVar(&cleanup, "cleanup", false, "detach all programs, remove all pinned maps and links under --bpffs, and exit")
	f.StringVar(&cfg.NodeName, "hostname-override", cli.Hostname(), "name of this node's Node object, whose addresses serve NodePorts and whose zone selects topology hints")
	f.StringVar(&cfg.HealthzAddr, "healthz-bind-address", "0.0.0.0:10256", "address for /healthz and /livez (as kube-proxy); empty disables")
	f.StringVar(&cfg.MetricsAddr, "metrics-bind-address", "127.0.0.1:10249", "address for Prometheus /metrics (as kube-proxy); empty disables")
	f.Var(cli.NodeIPs(&cfg.NodeIPs), "node-ip", "this node's addresses, comma-separated: NodePorts listen there when no API server says (--manifests), and flows to other nodes' backends are SNATed to the first of each family (default: the devices' addresses)")
	cli.LogFlags(f, &logLevel, &logForm)
	addDatapathFlags(f, &cfg)
	return cmd
}

// addDatapathFlags registers the agent's settings that `hivelet agent`
// and `hivelet node` share: everything but its sources, its names and
// addresses, and its one-shot modes.
func addDatapathFlags(f *pflag.FlagSet, cfg *daemon.Config) {
	f.StringVar(&cfg.BPFFSDir, "bpffs", datapath.DefaultBPFFSDir, "directory on a BPF filesystem for pinned maps and links (a bpffs is mounted if none covers it)")
	f.StringVar(&cfg.Cgroup2, "cgroup2", "", "cgroup v2 directory to attach the socket hooks to (default: the cgroup2 root from /proc/mounts)")
	f.DurationVar(&cfg.SyncPeriod, "sync-period", 30*time.Second, "how often the LB maps are checked against what the agent wrote (a full resync runs when they differ; 0: never); also the node routes resync period")
	f.DurationVar(&cfg.MinSyncInterval, "min-sync-period", 5*time.Millisecond, "minimum time between the starts of two syncs; changes arriving faster are merged into one (a partial sync costs well under a millisecond)")
	f.Uint32Var(&cfg.MapSizes.Services, "bpf-lb-service-map-max", datapath.DefaultMapSizes.Services, "entries per services map (one per frontend plus one per backend slot)")
	f.Uint32Var(&cfg.MapSizes.Backends, "bpf-lb-backend-map-max", datapath.DefaultMapSizes.Backends, "entries per backends map")
	f.Uint32Var(&cfg.MapSizes.RevNat, "bpf-lb-revnat-map-max", datapath.DefaultMapSizes.RevNat, "entries per reverse-NAT map (one per frontend)")
	f.Uint32Var(&cfg.MapSizes.SockRevNat, "bpf-sock-revnat-map-max", datapath.DefaultMapSizes.SockRevNat, "entries per socket reverse-NAT LRU map (one per socket and backend)")
	f.Uint32Var(&cfg.MapSizes.Affinity, "bpf-lb-affinity-map-max", datapath.DefaultMapSizes.Affinity, "entries in the session-affinity LRU map (one per client namespace and service with affinity)")
	f.BoolVar(&cfg.Masquerade, "masquerade", false, "give traffic from pods to destinations outside --cluster-cidr the node's address (nftables table inet hivelet-masquerade, rewritten every --sync-period)")
	f.Var(cli.CIDRs(&cfg.ClusterCIDRs), "cluster-cidr", "the pod CIDRs of the whole cluster, comma-separated (one per family): traffic within them is never masqueraded")
	f.StringVar(&cfg.PodRoutes, "pod-routes", "none", "native: route every other node's pod CIDRs (Node spec.podCIDRs) via its InternalIP, for nodes on a shared link; vxlan: through a VXLAN overlay (UDP 8472) to that address, for nodes that are not (pod MTU: 50 below the node's); none: leave pod routing to something else")
	f.StringVar(&cfg.Devices, "devices", daemon.DevicesAuto, "devices where clients from outside reach NodePorts, external IPs and load-balancer IPs (TC programs with conntrack and SNAT): \"auto\" (those of the default routes and node addresses), a comma-separated list, or \"none\" for socket LB only")
	f.StringVar(&cfg.LBAlgorithm, "bpf-lb-algorithm", "random", "how clients from outside pick a backend: random, or maglev (consistent hashing: every node picks the same backend for a flow); the annotation "+lb.AlgorithmAnnotation+" overrides it per Service")
	f.Uint32Var(&cfg.MaglevTableSize, "bpf-lb-maglev-table-size", datapath.DefaultMaglevTableSize, "slots of each Maglev table, a prime; more slots spread more evenly over many backends (4 bytes each per Service)")
	f.Uint32Var(&cfg.MapSizes.CT, "bpf-ct-map-max", datapath.DefaultMapSizes.CT, "entries in the connection-tracking LRU map (two per flow from outside to a local backend, one to a remote one)")
	f.Uint32Var(&cfg.MapSizes.NAT, "bpf-nat-map-max", datapath.DefaultMapSizes.NAT, "entries in the SNAT LRU map (one per flow from outside to a backend on another node)")
	f.Uint32Var(&cfg.MapSizes.SrcRanges, "bpf-lb-source-range-map-max", datapath.DefaultMapSizes.SrcRanges, "loadBalancerSourceRanges prefixes, all Services together")
	f.Uint32Var(&cfg.MapSizes.Maglev, "bpf-lb-maglev-map-max", datapath.DefaultMapSizes.Maglev, "frontends with a Maglev table")
	f.Var(&portRange{&cfg.NATPortMin, &cfg.NATPortMax}, "snat-port-range", fmt.Sprintf("ports flows to other nodes' backends are SNATed to, MIN-MAX (default %d-%d, above the kernel's ephemeral range)", datapath.DefaultNATPortMin, datapath.DefaultNATPortMax))
	f.BoolVar(&cfg.HostPorts, "enable-host-port", true, "serve the hostPorts of this node's pods from the BPF maps, as NodePorts with the pod as the one backend (needs list and watch on pods; the portmap CNI plugin is then not needed)")
	f.BoolVar(&cfg.SocketLBHostOnly, "socket-lb-host-only", false, "socket LB serves only the host's network namespace; pods' Service traffic is translated per packet on their veths (hivelet-cni's hl* host ends) instead, as service meshes and sandboxed runtimes need")
	f.StringVar(&cfg.HealthCheckAddr, "health-check-address", "", "address healthCheckNodePorts of externalTrafficPolicy Local Services listen on (default: every address)")
}

// portRange is the --snat-port-range flag: MIN-MAX.
type portRange struct{ min, max *uint16 }

func (r *portRange) String() string {
	if r.min == nil || *r.min == 0 {
		return ""
	}
	return fmt.Sprintf("%d-%d", *r.min, *r.max)
}

func (r *portRange) Set(s string) error {
	lo, hi, ok := strings.Cut(s, "-")
	a, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	b, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
	if !ok || err1 != nil || err2 != nil || a < 1024 || a > b {
		return fmt.Errorf("want MIN-MAX with 1024 <= MIN <= MAX <= 65535, got %q", s)
	}
	*r.min, *r.max = uint16(a), uint16(b)
	return nil
}

func (r *portRange) Type() string { return "range" }
