// Command hivelet-kubelet is kubelet-lite on its own: the same command as
// `hivelet kubelet`, in a binary that links neither the service proxy's
// datapath nor client-go's clientset. The kernel maps a binary's code in
// large folios, so what is linked, not only what runs, is resident memory.
package main

import (
	"os"

	"github.com/hivelet/hivelet/cmd/internal/kubeletcmd"
)

func main() {
	cmd := kubeletcmd.New("hivelet-kubelet")
	cmd.SilenceUsage = true
	if err := cmd.Execute(); err != nil {
		os.Exit(1)
	}
}
