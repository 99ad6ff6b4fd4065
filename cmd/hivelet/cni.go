package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/hivelet/hivelet/cni-plugin/install"
	"github.com/hivelet/hivelet/datapath/pins"
)

func newCNICmd() *cobra.Command {
	cmd := &cobra.Command{Use: "cni", Short: "Install or remove the hivelet-cni plugin and its network config"}
	opts := install.Options{}
	var cidrs []string
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
			for _, s := range cidrs {
				p, err := netip.ParsePrefix(s)
				if err != nil {
					return fmt.Errorf("--pod-cidr %q: %w", s, err)
				}
				opts.PodCIDRs = append(opts.PodCIDRs, p)
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
	in.Flags().StringVar(&opts.Plugin, "plugin", "", "hivelet-cni binary to install (default: hivelet-cni next to this binary)")
	in.Flags().StringVar(&opts.Network, "network-name", "hivelet", "CNI network name")
	in.Flags().IntVar(&opts.MTU, "mtu", 0, "pod interface MTU (default 1500)")
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
	cmd.AddCommand(in, out)
	return cmd
}
