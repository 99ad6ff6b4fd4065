package stats

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hivelet/hivelet/kubelet-lite/cri"
	"github.com/hivelet/hivelet/kubelet-lite/eviction"
)

// ContainerUsage is each pod's memory working set and writable layer
// bytes, by container, from one CRI call: what the eviction manager ranks
// pods by.
func ContainerUsage(ctx context.Context, rt *cri.Client) (memory, rootfs map[types.UID]eviction.PodUsage, err error) {
	ctx, cancel := cri.Ctx(ctx)
	defer cancel()
	list, err := rt.Runtime.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{})
	if err != nil {
		return nil, nil, fmt.Errorf("container stats: %w", err)
	}
	memory, rootfs = map[types.UID]eviction.PodUsage{}, map[types.UID]eviction.PodUsage{}
	for _, st := range list.Stats {
		a := st.GetAttributes()
		uid := types.UID(a.GetLabels()[labelPodUID])
		if uid == "" {
			continue
		}
		name := a.GetLabels()[labelContainer]
		add(memory, uid, name, st.GetMemory().GetWorkingSetBytes().GetValue())
		add(rootfs, uid, name, st.GetWritableLayer().GetUsedBytes().GetValue())
	}
	return memory, rootfs, nil
}

func add(m map[types.UID]eviction.PodUsage, uid types.UID, container string, v uint64) {
	if v == 0 {
		return
	}
	pu := m[uid]
	if pu.Containers == nil {
		pu.Containers = map[string]uint64{}
	}
	pu.Total += v
	pu.Containers[container] += v
	m[uid] = pu
}
