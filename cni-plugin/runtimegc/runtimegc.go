// Package runtimegc does, for runtimes that predate CNI GC (containerd
// 1.6 and 1.7), what CNI 1.1 runtimes do themselves: ask the runtime
// which pod sandboxes exist, and call GC on the network with exactly
// those attachments valid, so addresses and links of sandboxes the runtime
// lost (a crash between ADD and recording the sandbox, a wiped state dir)
// are released. It runs in the hivelet binary, never in the plugin.
package runtimegc

import (
	"context"
	"fmt"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/hivelet/hivelet/cni-plugin/install"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Options locate the runtime and the network.
type Options struct {
	RuntimeEndpoint string   // unix:///run/containerd/containerd.sock
	ConfDir         string   // where the conflist is
	Network         string   // its name
	BinDirs         []string // where plugins are
	IfName          string   // the pod interface runtimes ask for (eth0)
}

// Collect runs one GC pass and returns how many attachments it kept.
func Collect(ctx context.Context, o Options) (int, error) {
	list, err := libcni.LoadConfList(o.ConfDir, o.Network)
	if err != nil {
		return 0, fmt.Errorf("load network %q from %s: %w", o.Network, o.ConfDir, err)
	}
	conn, err := grpc.NewClient(o.RuntimeEndpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, fmt.Errorf("connect to the runtime at %s: %w", o.RuntimeEndpoint, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// Every sandbox the runtime knows, ready or not: a stopped sandbox
	// is torn down by the runtime itself when it is removed.
	resp, err := runtimeapi.NewRuntimeServiceClient(conn).ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return 0, fmt.Errorf("list pod sandboxes at %s: %w (is the runtime up?)", o.RuntimeEndpoint, err)
	}
	var valid []types.GCAttachment
	for _, s := range resp.Items {
		valid = append(valid, types.GCAttachment{ContainerID: s.Id, IfName: o.IfName})
	}
	cni := libcni.NewCNIConfig(o.BinDirs, nil)
	if err := cni.GCNetworkList(ctx, gcList(list), &libcni.GCArgs{ValidAttachments: valid}); err != nil {
		return 0, fmt.Errorf("gc network %q: %w", o.Network, err)
	}
	return len(valid), nil
}

// gcList is the network as GC needs it: GC is a CNI 1.1.0 operation, but
// conflists for containerd 1.6 and 1.7 say 1.0.0 (those runtimes reject
// 1.1.0 results), so speak 1.1.0 to hivelet-cni alone, which implements
// it, and leave other chained plugins out.
func gcList(list *libcni.NetworkConfigList) *libcni.NetworkConfigList {
	out := *list
	out.CNIVersion = "1.1.0"
	out.Plugins = nil
	for _, p := range list.Plugins {
		if p.Network.Type == install.PluginName {
			out.Plugins = append(out.Plugins, p)
		}
	}
	return &out
}
