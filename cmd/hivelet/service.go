package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hivelet/hivelet/datapath"
)

func newServiceCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "service", Short: "Inspect the services programmed in the datapath"}
	var (
		bpffs  string
		output string
	)
	list := &cobra.Command{
		Use:   "list [-o json]",
		Short: "List every frontend with its backends, read from the pinned BPF maps",
		Long: `List every service frontend with its backends, read straight from the pinned
BPF maps: it shows what the datapath does now, whether or not an agent runs.
ID is the frontend's reverse-NAT id.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "" && output != "json" && output != "table" {
				return fmt.Errorf("-o %q: want json or table", output)
			}
			p, err := datapath.OpenPinnedLB(bpffs)
			if err != nil {
				return err
			}
			defer p.Close()
			st, err := p.Dump(nil)
			if err != nil {
				return err
			}
			rows := serviceRows(st)
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			return printServiceTable(cmd.OutOrStdout(), rows)
		},
	}
	list.Flags().StringVar(&bpffs, "bpffs", datapath.DefaultBPFFSDir, "directory the agent pinned its maps in")
	list.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	cmd.AddCommand(list)
	return cmd
}

// serviceRow is one frontend as `service list` shows it.
type serviceRow struct {
	ID       uint32       `json:"id"`
	Frontend string       `json:"frontend"`
	Type     string       `json:"type"`
	Backends []backendRow `json:"backends"`
	// AffinityTimeout is sessionAffinity ClientIP's timeout, seconds.
	AffinityTimeout uint32 `json:"affinityTimeoutSeconds,omitempty"`
	// Problem is set when the maps are inconsistent (the agent repairs it
	// at its next full sync).
	Problem string `json:"problem,omitempty"`
}

type backendRow struct {
	ID      uint32 `json:"id"`
	Address string `json:"address"`
}

func serviceRows(st *datapath.State) []serviceRow {
	rows := make([]serviceRow, 0, len(st.Services))
	for f, s := range st.Services {
		r := serviceRow{ID: uint32(s.RevNat), Frontend: f.String(), Type: s.Flags.Type(), Backends: []backendRow{}, AffinityTimeout: s.AffinityTimeout}
		if s.Incomplete {
			r.Problem = "backend slots without a service entry"
		}
		if f.Scope == datapath.ScopeLocal {
			r.Frontend += " (external clients, local backends)"
		}
		for _, id := range s.Backends {
			b, ok := st.Backends[id]
			if !ok {
				r.Problem = fmt.Sprintf("backend %d missing", id)
				continue
			}
			r.Backends = append(r.Backends, backendRow{ID: uint32(id), Address: b.String()})
		}
		if rn, ok := st.RevNats[s.RevNat]; !s.Incomplete && (!ok || rn != netip.AddrPortFrom(f.Addr, f.Port)) {
			r.Problem = "reverse-NAT entry missing or wrong"
		}
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b serviceRow) int {
		if a.ID != b.ID {
			return int(a.ID) - int(b.ID)
		}
		return compareStrings(a.Frontend, b.Frontend)
	})
	return rows
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func printServiceTable(w io.Writer, rows []serviceRow) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "ID\tFrontend\tService Type\tBackend\t")
	for _, r := range rows {
		typ := r.Type
		if r.AffinityTimeout > 0 {
			typ += fmt.Sprintf(" (affinity %ds)", r.AffinityTimeout)
		}
		first := fmt.Sprintf("%d\t%s\t%s\t", r.ID, r.Frontend, typ)
		if len(r.Backends) == 0 {
			fmt.Fprintf(tw, "%s(none: connections refused)\t\n", first)
		}
		for i, b := range r.Backends {
			if i == 0 {
				fmt.Fprintf(tw, "%s%d => %s\t\n", first, i+1, b.Address)
			} else {
				fmt.Fprintf(tw, "\t\t\t%d => %s\t\n", i+1, b.Address)
			}
		}
		if r.Problem != "" {
			fmt.Fprintf(tw, "\t\t\t! %s\t\n", r.Problem)
		}
	}
	return tw.Flush()
}
