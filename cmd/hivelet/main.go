// Command hivelet is the node agent: an eBPF service proxy (agent), its
// CLI (service list) and the installer of its CNI plugin (cni install).
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/hivelet/hivelet/cmd/internal/kubeletcmd"
)

func main() {
	root := &cobra.Command{
		Use:   "hivelet",
		Short: "hivelet: an eBPF-first Kubernetes node agent",
		Long: `hivelet replaces kube-proxy with eBPF: Services are load-balanced when a
socket connects or sends, by BPF programs on the cgroup v2 hierarchy, with
no iptables rules and no per-packet NAT.`,
		SilenceUsage: true,
		// main prints the error, once.
		SilenceErrors: true,
	}
	root.AddCommand(newNodeCmd(), newAgentCmd(), newServiceCmd(), newCNICmd(), newDatapathCmd(), kubeletcmd.New("kubelet"))
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}
