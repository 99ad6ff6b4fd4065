package pods

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	fake "k8s.io/cri-api/pkg/apis/testing"
)

// deadInstances puts n instances of container "c" of pod uid in the fake
// runtime, oldest first, the newest in state newestState, all created
// an hour ago or later.
func deadInstances(rt *fake.FakeRuntimeService, uid string, n int, newestState runtimeapi.ContainerState) []*fake.FakeContainer {
	var out []*fake.FakeContainer
	base := time.Now().Add(-time.Hour)
	for i := range n {
		st := runtimeapi.ContainerState_CONTAINER_EXITED
		if i == n-1 {
			st = newestState
		}
		out = append(out, &fake.FakeContainer{ContainerStatus: runtimeapi.ContainerStatus{Id: fmt.Sprintf("%s-%d", uid, i),
			Metadata: &runtimeapi.ContainerMetadata{Name: "c", Attempt: uint32(i)}, State: st,
			CreatedAt: base.Add(time.Duration(i) * time.Minute).UnixNano(), Labels: map[string]string{LabelPodUID: uid}}})
	}
	return out
}

func ids(rt *fake.FakeRuntimeService) []string {
	var out []string
	for id := range rt.Containers {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// TestPruneDeadPolicy: the newest instance always stays; beside it,
// MaxPerPodContainer dead ones (none with 0, all with -1); one younger
// than MinAge stays.
func TestPruneDeadPolicy(t *testing.T) {
	for _, tc := range []struct {
		name string
		gc   *ContainerGC
		want []string
	}{
		{"default: one dead besides the newest", nil, []string{"p-3", "p-4"}},
		{"none besides the newest", &ContainerGC{MaxPerPodContainer: 0}, []string{"p-4"}},
		{"no limit", &ContainerGC{MaxPerPodContainer: -1}, []string{"p-0", "p-1", "p-2", "p-3", "p-4"}},
		{"young ones stay", &ContainerGC{MaxPerPodContainer: 0, MinAge: 58*time.Minute + 30*time.Second}, []string{"p-2", "p-3", "p-4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, rt := fakeNode(t)
			m.cfg.ContainerGC = tc.gc
			cs := deadInstances(rt.RT, "p", 5, runtimeapi.ContainerState_CONTAINER_RUNNING)
			rt.RT.SetFakeContainers(cs)
			rp := &runtimePod{}
			for _, c := range cs {
				rp.containers = append(rp.containers, &c.ContainerStatus)
			}
			m.pruneDead(context.Background(), rp)
			if got := ids(rt.RT); !slices.Equal(got, tc.want) {
				t.Errorf("left %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPruneNode: over MaxContainers dead containers on the node, the
// oldest go, but never a container's newest instance.
func TestPruneNode(t *testing.T) {
	m, rt := fakeNode(t)
	m.cfg.ContainerGC = &ContainerGC{MaxPerPodContainer: -1, MaxContainers: 2}
	cs := append(deadInstances(rt.RT, "a", 3, runtimeapi.ContainerState_CONTAINER_EXITED),
		deadInstances(rt.RT, "b", 2, runtimeapi.ContainerState_CONTAINER_EXITED)...)
	rt.RT.SetFakeContainers(cs)
	m.pruneNode(context.Background())
	// 5 dead, 2 allowed: a-0, b-0 and a-1 are oldest; a-2 and b-1 are
	// newest instances and stay.
	if got := ids(rt.RT); !slices.Equal(got, []string{"a-2", "b-1"}) {
		t.Errorf("left %v", got)
	}
}
