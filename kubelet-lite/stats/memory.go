package stats

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hivelet/hivelet/kubelet-lite/cri"
	"github.com/hivelet/hivelet/kubelet-lite/eviction"
)

// PodMemory is each pod's memory working set by container, from one CRI
// call: what the eviction manager ranks pods by.
func PodMemory(ctx context.Context, rt *cri.Client) (map[types.UID]eviction.PodMemory, error) {
	ctx, cancel := cri.Ctx(ctx)
	defer cancel()
	list, err := rt.Runtime.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{})
	if err != nil {
		return nil, fmt.Errorf("container stats: %w", err)
	}
	out := map[types.UID]eviction.PodMemory{}
	for _, st := range list.Stats {
		a := st.GetAttributes()
		uid := types.UID(a.GetLabels()[labelPodUID])
		ws := st.GetMemory().GetWorkingSetBytes().GetValue()
		if uid == "" || ws == 0 {
			continue
		}
		pm := out[uid]
		if pm.Containers == nil {
			pm.Containers = map[string]uint64{}
		}
		pm.Total += ws
		pm.Containers[a.GetLabels()[labelContainer]] += ws
		out[uid] = pm
	}
	return out, nil
}
