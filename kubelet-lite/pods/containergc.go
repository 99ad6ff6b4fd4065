package pods

import (
	"cmp"
	"context"
	"slices"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hivelet/hivelet/kubelet-lite/cri"
)

// ContainerGC is upstream's dead container policy.
type ContainerGC struct {
	// MaxPerPodContainer dead instances of each container are kept
	// beside its newest (--maximum-dead-containers-per-container, 1);
	// negative: no limit.
	MaxPerPodContainer int
	// MaxContainers dead containers are kept on the node
	// (--maximum-dead-containers); negative: no limit (the default).
	MaxContainers int
	// MinAge: a dead container created less long ago stays
	// (--minimum-container-ttl-duration, 0).
	MinAge time.Duration
}

// DefaultContainerGC is the upstream kubelet's.
var DefaultContainerGC = ContainerGC{MaxPerPodContainer: 1, MaxContainers: -1}

// nodeGCPeriod is how often the node-wide limit is enforced, upstream's
// container GC period.
const nodeGCPeriod = time.Minute

func (m *Manager) containerGC() ContainerGC {
	if m.cfg.ContainerGC == nil {
		return DefaultContainerGC
	}
	return *m.cfg.ContainerGC
}

// pruneNode enforces MaxContainers: the oldest dead containers on the
// node go first, but never the newest instance of a pod's container (its
// status and `kubectl logs` read it).
func (m *Manager) pruneNode(ctx context.Context) {
	gc := m.containerGC()
	if gc.MaxContainers < 0 {
		return
	}
	cctx, cancel := cri.Ctx(ctx)
	defer cancel()
	all, err := m.rt.Runtime.ListContainers(cctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		m.log.Warn("Listing containers for garbage collection failed", "error", err)
		return
	}
	cs := all.GetContainers()
	newest := map[string]*runtimeapi.Container{}
	for _, c := range cs {
		key := c.GetLabels()[LabelPodUID] + "/" + c.GetMetadata().GetName()
		if n := newest[key]; n == nil || c.CreatedAt > n.CreatedAt {
			newest[key] = c
		}
	}
	var dead []*runtimeapi.Container
	for _, c := range cs {
		if c.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			dead = append(dead, c)
		}
	}
	excess := len(dead) - gc.MaxContainers
	if excess <= 0 {
		return
	}
	slices.SortFunc(dead, func(a, b *runtimeapi.Container) int { return cmp.Compare(a.CreatedAt, b.CreatedAt) })
	var old []*runtimeapi.ContainerStatus
	for _, c := range dead {
		if len(old) == excess {
			break
		}
		key := c.GetLabels()[LabelPodUID] + "/" + c.GetMetadata().GetName()
		if newest[key] == c || time.Since(time.Unix(0, c.CreatedAt)) < gc.MinAge {
			continue
		}
		st, err := m.rt.Runtime.ContainerStatus(cctx, &runtimeapi.ContainerStatusRequest{ContainerId: c.Id})
		if err != nil || st.GetStatus() == nil {
			continue
		}
		old = append(old, st.Status)
	}
	m.removeDead(ctx, old)
}
