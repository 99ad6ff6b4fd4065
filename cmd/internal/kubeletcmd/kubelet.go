// Package kubeletcmd is the kubelet-lite command line, shared by `hivelet
// kubelet` and the hivelet-kubelet binary.
package kubeletcmd

import (
	"context"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"github.com/hivelet/hivelet/cmd/internal/cli"
	kubeletlite "github.com/hivelet/hivelet/kubelet-lite"
	"github.com/hivelet/hivelet/kubelet-lite/imagegc"
	"github.com/hivelet/hivelet/kubelet-lite/pods"
)

// Options are the kubelet's settings as the command line and --config
// give them.
type Options struct {
	Config            kubeletlite.Config
	ConfigFile        string
	LogLevel, LogForm string
	containerGC       pods.ContainerGC
}

// NewOptions returns the upstream defaults.
func NewOptions() *Options {
	o := &Options{containerGC: pods.DefaultContainerGC}
	o.Config.EvictionHard = defaultEviction()
	o.Config.ImageGC = imagegc.DefaultPolicy
	o.Config.ContainerGC = &o.containerGC
	return o
}

// Complete applies the flags given over the --config file, whose
// KubeletConfiguration documents fill in the rest.
func (o *Options) Complete(fs *pflag.FlagSet) error {
	var given []string
	fs.Visit(func(f *pflag.Flag) { given = append(given, f.Name) })
	o.Config.FlagsGiven(given...)
	if o.ConfigFile == "" {
		return nil
	}
	return o.Config.LoadFile(o.ConfigFile)
}

// New returns the command; use is its name ("kubelet" or the binary's).
func New(use string) *cobra.Command {
	o := NewOptions()
	cmd := &cobra.Command{
		Use:   use + " [--kubeconfig FILE] [--pod-manifest-path DIR] [--container-runtime-endpoint SOCK]",
		Short: "Run kubelet-lite: register this node and run its pods through CRI",
		Long: `Run kubelet-lite, hivelet's lean kubelet.

It registers the Node (addresses, capacity, labels, conditions measured on the
machine) and renews its Lease in kube-node-lease, follows the Pods bound to
the node and the static pods of --pod-manifest-path (which run with no API
server), and runs them through the CRI runtime: sandbox, init containers in
order, containers with restart policy and crash-loop back-off, probes, and
graceful termination; their status goes back to the API server when it
changes. Flags keep the upstream kubelet's names.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := cli.NewLogger(o.LogLevel, o.LogForm)
			if err != nil {
				return err
			}
			if err := o.Complete(cmd.Flags()); err != nil {
				return err
			}
			klog.SetSlogLogger(log)
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return kubeletlite.Run(ctx, o.Config, log)
		},
	}
	o.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&o.ConfigFile, "config", "", "a KubeletConfiguration file, decoded strictly (a field kubelet-lite does not do is refused by name); flags win")
	cli.LogFlags(cmd.Flags(), &o.LogLevel, &o.LogForm)
	return cmd
}

// AddFlags registers the kubelet's flags, upstream's names, but --config
// and the log flags, which a command combining the kubelet with more
// registers once for all.
func (o *Options) AddFlags(f *pflag.FlagSet) {
	cfg, containerGC := &o.Config, &o.containerGC
	f.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig of the API server (or \"in-cluster\"); without it only static pods run")
	f.StringVar(&cfg.BootstrapKubeconfig, "bootstrap-kubeconfig", "", "kubeconfig whose credentials ask for the node's client certificate (a CSR) when --kubeconfig does not exist yet or its certificate expired; --kubeconfig is then written")
	f.BoolVar(&cfg.RotateCertificates, "rotate-certificates", false, "renew the client certificate (a new key and CSR) once 70-90% of its life has passed")
	f.StringVar(&cfg.CertDir, "cert-dir", "", "directory of the client certificate pairs (default <root-dir>/pki)")
	cli.KubeAPICompression(f, &cfg.KubeAPICompression)
	f.StringVar(&cfg.RuntimeEndpoint, "container-runtime-endpoint", "", "CRI socket (default "+"unix:///run/containerd/containerd.sock)")
	f.StringVar(&cfg.PodManifestPath, "pod-manifest-path", "", "directory of static pod manifests (YAML or JSON), re-read every 5 s")
	f.StringVar(&cfg.NodeName, "hostname-override", cli.Hostname(), "name of this node's Node object")
	f.Var(cli.NodeIPs(&cfg.NodeIPs), "node-ip", "this node's addresses, comma-separated (status.hostIP and the Node's InternalIPs)")
	f.StringVar(&cfg.RootDir, "root-dir", "/var/lib/kubelet-lite", "directory for pod logs and state")
	f.StringVar(&cfg.CgroupRoot, "cgroup-root", "", "cgroup under which the kubepods hierarchy lives (default /)")
	f.StringVar(&cfg.CgroupDriver, "cgroup-driver", "cgroupfs", "how pod cgroups are named: cgroupfs, or systemd (slices; systemd must be init); the runtime's own driver wins when it reports one")
	f.Var(&evictionFlag{&cfg.EvictionHard}, "eviction-hard", "hard eviction thresholds, signal<value (a quantity or a percentage): they set the pressure conditions and come off allocatable")
	f.Var(&evictionFlag{&cfg.EvictionSoft}, "eviction-soft", "soft eviction thresholds, as --eviction-hard: they evict once held for their --eviction-soft-grace-period")
	f.StringToStringVar(&cfg.EvictionSoftGracePeriod, "eviction-soft-grace-period", nil, "how long each soft threshold must hold before it evicts: memory.available=1m30s")
	f.IntVar(&cfg.EvictionMaxPodGracePeriod, "eviction-max-pod-grace-period", 0, "most seconds a pod evicted for a soft threshold gets to stop (0: its own grace period)")
	f.DurationVar(&cfg.EvictionPressureTransitionPeriod, "eviction-pressure-transition-period", 5*time.Minute, "how long a pressure condition holds after its signal last met a threshold")
	f.StringToStringVar(&cfg.EvictionMinimumReclaim, "eviction-minimum-reclaim", nil, "what is freed beyond a threshold before its pressure ends: memory.available=500Mi")
	f.IntVar(&cfg.ImageGC.HighThresholdPercent, "image-gc-high-threshold", cfg.ImageGC.HighThresholdPercent, "image file system usage (percent) from which unused images are removed, least recently used first")
	f.IntVar(&cfg.ImageGC.LowThresholdPercent, "image-gc-low-threshold", cfg.ImageGC.LowThresholdPercent, "image file system usage (percent) image garbage collection brings it down to")
	f.DurationVar(&cfg.ImageGC.MinAge, "minimum-image-ttl-duration", cfg.ImageGC.MinAge, "an unused image is kept at least this long after it was first seen")
	f.DurationVar(&cfg.ImageGC.MaxAge, "image-maximum-gc-age", 0, "an image unused for longer is removed whatever the disk usage (0: never)")
	f.DurationVar(&cfg.ImageGCPeriod, "image-gc-period", imagegc.Period, "how often image garbage collection runs")
	_ = f.MarkHidden("image-gc-period") // for tests; upstream's period is fixed
	f.IntVar(&containerGC.MaxPerPodContainer, "maximum-dead-containers-per-container", containerGC.MaxPerPodContainer, "dead instances kept per container beside its newest (negative: no limit)")
	f.IntVar(&containerGC.MaxContainers, "maximum-dead-containers", containerGC.MaxContainers, "dead containers kept on the node, oldest removed first (negative: no limit)")
	f.DurationVar(&containerGC.MinAge, "minimum-container-ttl-duration", containerGC.MinAge, "a dead container is kept at least this long after its creation")
	f.StringSliceVar(&cfg.EnforceNodeAllocatable, "enforce-node-allocatable", []string{"pods"}, "pods: the kubepods cgroup's memory is limited to capacity less --system-reserved and --kube-reserved; none: it is not")
	f.StringToStringVar(&cfg.SystemReserved, "system-reserved", nil, "resources kept for the system, off allocatable: cpu=100m,memory=500Mi,ephemeral-storage=1Gi,pid=1000")
	f.StringToStringVar(&cfg.KubeReserved, "kube-reserved", nil, "resources kept for Kubernetes' own daemons, off allocatable, as --system-reserved")
	f.IntVar(&cfg.MaxPods, "max-pods", 0, "pods this node accepts (default 110)")
	f.StringVar(&cfg.PodCIDR, "pod-cidr", "", "this node's pod range, when no controller assigns spec.podCIDR")
	f.StringVar(&cfg.HealthzAddr, "healthz-bind-address", "127.0.0.1:10248", "address for /healthz (runtime reachable and relisted within 3 min); empty disables")
	f.StringVar(&cfg.Address, "address", "0.0.0.0", "IP address the kubelet API (container logs for `kubectl logs`, TLS) listens on")
	f.IntVar(&cfg.Port, "port", 10250, "port of the kubelet API; 0 disables it")
	f.BoolVar(&cfg.AuthenticationTokenWebhook, "authentication-token-webhook", false, "also accept bearer tokens on the kubelet API, checked with the API server (TokenReview)")
	f.BoolVar(&cfg.AnonymousAuth, "anonymous-auth", false, "serve kubelet API requests that carry no credentials as system:anonymous, for --authorization-mode to judge (upstream's default is true; kubeadm's and this one's is false)")
	f.StringVar(&cfg.AuthorizationMode, "authorization-mode", "AlwaysAllow", "kubelet API authorization: AlwaysAllow, or Webhook (a SubjectAccessReview on nodes/proxy, nodes/log, ... per request, cached)")
	f.StringVar(&cfg.TLSCertFile, "tls-cert-file", "", "serving certificate of the kubelet API (default: self-signed for the node's name)")
	f.StringVar(&cfg.TLSPrivateKeyFile, "tls-private-key-file", "", "key of --tls-cert-file")
	f.StringVar(&cfg.ClientCAFile, "client-ca-file", "", "CA of the client certificates the kubelet API accepts (the API server's kubelet client); without it the kubelet API is off")
	f.BoolVar(&cfg.SeccompDefault, "seccomp-default", false, "run containers that ask for no seccomp profile under the runtime's default profile instead of unconfined")
	f.StringSliceVar(&cfg.AllowedUnsafeSysctls, "allowed-unsafe-sysctls", nil, "namespaced sysctls (or prefixes ending in *) pods may set beyond the safe set, comma-separated")
	f.Var(cli.NodeIPs(&cfg.ClusterDNS), "cluster-dns", "DNS server addresses of ClusterFirst pods, comma-separated (the kube-dns Service)")
	f.StringVar(&cfg.ClusterDomain, "cluster-domain", "", "the cluster's DNS domain (cluster.local): pods search <ns>.svc.<domain>, svc.<domain>, <domain>")
	f.StringVar(&cfg.ResolvConf, "resolv-conf", "/etc/resolv.conf", "resolver file that pods with dnsPolicy Default get; empty: none")
	f.StringVar(&cfg.PodLogsDir, "pod-logs-dir", "", "directory of container logs, <ns>_<pod>_<uid>/<container>/<n>.log (default /var/log/pods)")
	f.StringVar(&cfg.ContainerLogMaxSize, "container-log-max-size", "", "rotate a container's log past this size (default 10Mi; 0 disables)")
	f.IntVar(&cfg.ContainerLogMaxFiles, "container-log-max-files", 0, "log files kept per container, the live one included (default 5)")
}
