package csi

import (
	"context"
	"fmt"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Upstream's timeouts: answers about the plugin come quickly; staging
// and publishing may format and mount a disk.
const (
	infoTimeout  = 15 * time.Second
	mountTimeout = 2 * time.Minute
)

// driver is a registered CSI node plugin.
type driver struct {
	name     string
	endpoint string // the CSI socket's path
	conn     *grpc.ClientConn
	node     csipb.NodeClient

	nodeID   string
	maxVols  int64
	topology map[string]string
	// The node service's capabilities.
	stage, mountGroup, singleWriter bool
}

// dialDriver connects to a CSI endpoint and asks the node service who it
// is and what it can do.
func dialDriver(ctx context.Context, name, endpoint string) (*driver, error) {
	conn, err := grpc.NewClient("unix:"+endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("connect to CSI driver %s at %s: %w", name, endpoint, err)
	}
	d := &driver{name: name, endpoint: endpoint, conn: conn, node: csipb.NewNodeClient(conn)}
	ctx, cancel := context.WithTimeout(ctx, infoTimeout)
	defer cancel()
	info, err := d.node.NodeGetInfo(ctx, &csipb.NodeGetInfoRequest{})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("CSI driver %s: NodeGetInfo: %w", name, err)
	}
	if info.GetNodeId() == "" {
		conn.Close()
		return nil, fmt.Errorf("CSI driver %s: NodeGetInfo returned no node ID", name)
	}
	d.nodeID, d.maxVols = info.GetNodeId(), info.GetMaxVolumesPerNode()
	d.topology = info.GetAccessibleTopology().GetSegments()
	caps, err := d.node.NodeGetCapabilities(ctx, &csipb.NodeGetCapabilitiesRequest{})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("CSI driver %s: NodeGetCapabilities: %w", name, err)
	}
	for _, c := range caps.GetCapabilities() {
		switch c.GetRpc().GetType() {
		case csipb.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME:
			d.stage = true
		case csipb.NodeServiceCapability_RPC_VOLUME_MOUNT_GROUP:
			d.mountGroup = true
		case csipb.NodeServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER:
			d.singleWriter = true
		}
	}
	return d, nil
}

func (d *driver) close() { d.conn.Close() }
