package main

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"net/netip"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/hivelet/hivelet/cni-plugin/install"
	"github.com/hivelet/hivelet/cni-plugin/runtimegc"
	"github.com/hivelet/hivelet/daemon/kubeclient"
	"github.com/hivelet/hivelet/datapath/pins"
)

// nodePodCIDRs reads a Node's pod CIDRs, waiting for the node IPAM
// controller to assign them to a new node.
func nodePodCIDRs(ctx context.Context, node, kubeconfig, apiServer string) ([]string, error) {
	cfg, err := kubeclient.Config(kubeconfig, "hivelet-cni-install", false, apiServer)
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create Kubernetes client: %w", err)
	}
	var last error
	for end := time.Now().Add(time.Minute); time.Now().Before(end); time.Sleep(2 * time.Second) {
		n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		switch {
		case err != nil:
			last = fmt.Errorf("read Node %s: %w", node, err)
		case len(n.Spec.PodCIDRs) == 0 && n.Spec.PodCIDR == "":
			last = fmt.Errorf("Node %s has no spec.podCIDRs yet (is the controller manager's --allocate-node-cidrs on?)", node)
		case len(n.Spec.PodCIDRs) > 0:
			return n.Spec.PodCIDRs, nil
		default:
			return []string{n.Spec.PodCIDR}, nil
		}
	}
	return nil, last
}

func newCNICmd() *cobra.Command {
	cmd := &cobra.Command{Use: "cni", Short: "Install or remove the hivelet-cni plugin and its network config"}
	opts := install.Options{}
	var cidrs []string
	var fromNode, kubeconfig, apiServer, podRoutes string
	flags := func(c *cobra.Command) {
		c.Flags().StringVar(&opts.BinDir, "bin-dir", "/opt/cni/bin", "CNI plugin directory of the container runtime")
		c.Flags().StringVar(&opts.ConfDir, "conf-dir", "/etc/cni/net.d", "CNI config directory of the container runtime")
		c.Flags().StringVar(&opts.ConfName, "conf-name", "05-hivelet.conflist", "file name of the conflist (runtimes use the first in lexical order)")
	}
	in := &cobra.Command{
		Use:   "install --pod-cidr CIDR[,CIDR]",
		Short: "Copy hivelet-cni into the CNI bin dir and write its conflist",
		Long: `Copy the hivelet-cni binary into --bin-dir and write a conflist for the node's
pod CIDRs into --conf-dir. Both are written to a temporary file and renamed
into place, so a runtime never reads a partial file. Running it again
updates both.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if fromNode != "" {
				if len(cidrs) > 0 {
					return fmt.Errorf("--from-node and --pod-cidr: pass one")
				}
				var err error
				if cidrs, err = nodePodCIDRs(context.Background(), fromNode, kubeconfig, apiServer); err != nil {
					return err
				}
			}
			for _, s := range cidrs {
				p, err := netip.ParsePrefix(s)
				if err != nil {
					return fmt.Errorf("--pod-cidr %q: %w", s, err)
				}
				opts.PodCIDRs = append(opts.PodCIDRs, p)
			}
			if opts.MTU == 0 {
				// Follow the underlay (a jumbo-frame network, a cloud's
				// 1460): pods on the 1500 default would fragment or
				// black-hole there.
				if mtu, err := install.DetectMTU(podRoutes == "vxlan"); err == nil {
					opts.MTU = mtu
				} else {
					fmt.Fprintf(cmd.ErrOrStderr(), "%v; pods get the default MTU\n", err)
				}
			}
			if opts.Plugin == "" {
				self, err := os.Executable()
				if err != nil {
					return err
				}
				opts.Plugin = filepath.Join(filepath.Dir(self), install.PluginName)
			}
			if err := install.Install(opts); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "installed %s and %s\n",
				filepath.Join(opts.BinDir, install.PluginName), filepath.Join(opts.ConfDir, opts.ConfName))
			return nil
		},
	}
	flags(in)
	in.Flags().StringSliceVar(&cidrs, "pod-cidr", nil, "the node's pod CIDRs, one per IP family (its Node's spec.podCIDRs)")
	in.Flags().StringVar(&fromNode, "from-node", "", "read the pod CIDRs from this Node's spec.podCIDRs (waiting up to a minute for them), instead of --pod-cidr")
	in.Flags().StringVar(&kubeconfig, "kubeconfig", kubeclient.InCluster, "with --from-node: kubeconfig file, or \"in-cluster\"")
	in.Flags().StringVar(&apiServer, "k8s-api-server", "", "with --from-node: the API server's URL, replacing the kubeconfig's (or the kubernetes Service's)")
	in.Flags().StringVar(&opts.Plugin, "plugin", "", "hivelet-cni binary to install (default: hivelet-cni next to this binary)")
	in.Flags().StringVar(&opts.Network, "network-name", "hivelet", "CNI network name")
	in.Flags().StringVar(&opts.CNIVersion, "cni-version", install.DefaultCNIVersion, "cniVersion of the conflist (1.1.0 adds STATUS and GC; containerd 1.6/1.7 need 1.0.0)")
	in.Flags().StringVar(&opts.DataDir, "ipam-data-dir", "", "where pod address leases are kept (default /var/lib/cni/networks); one per node when several share a machine")
	in.Flags().IntVar(&opts.MTU, "mtu", 0, "pod interface MTU (default: the default route's device's, less 50 with --pod-routes vxlan; 1500 without a default route)")
	in.Flags().StringVar(&podRoutes, "pod-routes", "none", "the agent's --pod-routes: with vxlan the detected MTU leaves room for the overlay")
	in.Flags().BoolVar(&opts.Standalone, "standalone", false, "report ready (CNI STATUS) without a running hivelet agent")
	in.Flags().StringVar(&opts.BPFFS, "bpffs", pins.DefaultBPFFS, "where the agent pins its datapath (CNI STATUS waits for it)")
	out := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove the conflist and the plugin binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return install.Uninstall(opts)
		},
	}
	flags(out)
	cmd.AddCommand(in, out, newCNIGCCmd())
	return cmd
}

func newCNIGCCmd() *cobra.Command {
	o := runtimegc.Options{}
	gc := &cobra.Command{
		Use:   "gc",
		Short: "Release pod addresses and links the container runtime no longer knows",
		Long: `Ask the container runtime (CRI) for its pod sandboxes and run CNI GC on the
network with exactly those attachments valid: addresses and host links of
sandboxes the runtime lost are released. CNI 1.1 runtimes do this
themselves; containerd 1.6 and 1.7 do not. Run it in the node's network
namespace, after a runtime restart or on a timer.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kept, err := runtimegc.Collect(cmd.Context(), o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "gc done: %d attachments kept\n", kept)
			return nil
		},
	}
	gc.Flags().StringVar(&o.RuntimeEndpoint, "container-runtime-endpoint", "unix:///run/containerd/containerd.sock", "CRI endpoint of the container runtime")
	gc.Flags().StringVar(&o.ConfDir, "conf-dir", "/etc/cni/net.d", "CNI config directory")
	gc.Flags().StringVar(&o.Network, "network-name", "hivelet", "CNI network to collect")
	gc.Flags().StringSliceVar(&o.BinDirs, "bin-dir", []string{"/opt/cni/bin"}, "CNI plugin directories")
	gc.Flags().StringVar(&o.IfName, "ifname", "eth0", "pod interface name the runtime uses")
	return gc
}
