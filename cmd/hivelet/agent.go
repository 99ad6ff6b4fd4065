package main

import (
	"context"
	"errors"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/hivelet/hivelet/cmd/internal/cli"
	"github.com/hivelet/hivelet/daemon"
	"github.com/hivelet/hivelet/daemon/kubeproxy"
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
				log.Info("Removed kube-proxy's leftovers", "iptablesChains", r.Chains, "iptablesJumps", r.Jumps, "nftablesTables", r.Tables,
					"ipvsFlushed", r.IPVSFlushed, "links", r.Links, "ipsets", r.IPSets)
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
	cfg.AddFlags(f)
	return cmd
}
