// Command hivelet-cni is hivelet's CNI plugin: the container runtime runs
// it per pod network operation (CNI_COMMAND ADD, DEL, CHECK, STATUS, GC,
// VERSION) with the network config on stdin. See cni-plugin/.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/hivelet/hivelet/cni-plugin/plugin"
)

func main() {
	skel.PluginMainFuncs(plugin.Funcs(), plugin.Versions, "hivelet-cni: pod networking for hivelet nodes (point-to-point veths, host-local addresses)")
}
