package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hivelet/hivelet/datapath"
)

// newDatapathCmd shows what the per-packet programs do: where they are
// attached, their counters and the tracked flows.
func newDatapathCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "datapath", Short: "Inspect the per-packet (TC) datapath: attachments, counters, connection tracking"}
	var bpffs, output string
	open := func() (*datapath.PinnedHost, error) { return datapath.OpenPinnedHost(bpffs) }
	status := &cobra.Command{
		Use:   "status",
		Short: "Devices and pod veths with programs attached, and the packet counters",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := open()
			if err != nil {
				return err
			}
			defer p.Close()
			devs, pods, err := p.Devices()
			if err != nil {
				return err
			}
			st, err := p.Stats()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "devices:   %s\npod veths: %d\n", orNone(devs), len(pods))
			for _, s := range datapath.AllStats() {
				fmt.Fprintf(w, "%-26s %d\n", s.String()+":", st[s])
			}
			return nil
		},
	}
	ct := &cobra.Command{
		Use:   "conntrack [-o json]",
		Short: "List the tracked flows (CT) and SNAT entries",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := open()
			if err != nil {
				return err
			}
			defer p.Close()
			entries, err := p.Conntrack()
			if err != nil {
				return err
			}
			slices.SortFunc(entries, func(a, b datapath.CTEntry) int { return strings.Compare(a.Flow.String(), b.Flow.String()) })
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(entries)
			}
			now := datapath.MonotonicSeconds()
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MAP\tFLOW\tBECOMES\tBACKEND\tEXPIRES IN")
			for _, e := range entries {
				m := "ct"
				if e.NAT {
					m = "nat"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s -> %s\t%d\t%ds\n", m, e.Flow, e.NewSrc, e.NewDst, e.Backend, int64(e.Expires)-int64(now))
			}
			return tw.Flush()
		},
	}
	ct.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	cmd.PersistentFlags().StringVar(&bpffs, "bpffs", datapath.DefaultBPFFSDir, "directory the agent pinned its maps in")
	cmd.AddCommand(status, ct)
	return cmd
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
