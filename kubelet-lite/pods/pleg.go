package pods

import (
	"context"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hivelet/hivelet/kubelet-lite/cri"
	"github.com/hivelet/hivelet/kubelet-lite/metrics"
)

// PLEGPeriod is how often the runtime is relisted.
const PLEGPeriod = time.Second

// Run relists the runtime every PLEGPeriod, waking the workers of pods
// whose sandboxes or containers changed state, and removes what belongs
// to no pod once every source is ready.
func (m *Manager) Run(ctx context.Context) {
	prev := map[string]string{}
	var lastNodeGC, lastDirSweep time.Time
	tick := time.NewTicker(PLEGPeriod)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		began := time.Now()
		snap, err := m.relist(ctx)
		metrics.PLEGRelist.Since(began)
		if err != nil {
			m.log.Warn("Relisting the container runtime failed", "error", err)
			continue
		}
		m.mu.Lock()
		m.lastRelist = time.Now()
		m.mu.Unlock()
		metrics.PLEGLastSeen.Set(float64(time.Now().Unix()))
		snap.count()
		changed := map[types.UID]bool{}
		for id, s := range snap.states {
			if prev[id] != s {
				changed[snap.owner[id]] = true
			}
		}
		for id := range prev {
			if _, ok := snap.states[id]; !ok {
				changed[types.UID(prev[id+"/uid"])] = true
			}
		}
		next := map[string]string{}
		for id, s := range snap.states {
			next[id] = s
			next[id+"/uid"] = string(snap.owner[id])
		}
		prev = next
		m.mu.Lock()
		var orphans []types.UID
		for uid := range snap.uids {
			if w := m.workers[uid]; w != nil {
				if changed[uid] {
					w.kick()
				}
			} else {
				orphans = append(orphans, uid)
			}
		}
		m.mu.Unlock()
		if !m.allSourcesReady() {
			continue
		}
		for _, uid := range orphans {
			m.log.Info("Removing a pod no source has", "uid", uid)
			m.removeRuntimePod(ctx, uid, 0, nil)
			m.cleanupPodFiles(ctx, string(uid))
		}
		keep := func(uid types.UID) bool {
			m.mu.Lock()
			defer m.mu.Unlock()
			return m.workers[uid] != nil || snap.uids[uid] && !slices.Contains(orphans, uid)
		}
		m.sweepCgroups(keep)
		if m.cfg.Devices != nil {
			m.cfg.Devices.Retain(keep)
		}
		if time.Since(lastDirSweep) >= dirSweepPeriod {
			lastDirSweep = time.Now()
			m.sweepPodDirs(ctx, keep)
		}
		if time.Since(lastNodeGC) >= nodeGCPeriod {
			lastNodeGC = time.Now()
			m.pruneNode(ctx)
		}
	}
}

type snapshot struct {
	states map[string]string    // sandbox or container id → state
	owner  map[string]types.UID // id → pod uid
	uids   map[types.UID]bool
}

// count sets the running pods and containers gauges, named as upstream
// (a pod runs while its sandbox is ready).
func (s *snapshot) count() {
	pods := map[types.UID]bool{}
	byState := map[string]int{}
	for id, st := range s.states {
		switch st {
		case runtimeapi.PodSandboxState_SANDBOX_READY.String():
			pods[s.owner[id]] = true
		case runtimeapi.PodSandboxState_SANDBOX_NOTREADY.String():
		default:
			byState[containerStateLabel(st)]++
		}
	}
	metrics.RunningPods.Set(float64(len(pods)))
	metrics.RunningContainers.Reset()
	for st, n := range byState {
		metrics.RunningContainers.Set(float64(n), st)
	}
}

// containerStateLabel is CONTAINER_RUNNING as upstream writes it: running.
func containerStateLabel(state string) string {
	return strings.ToLower(strings.TrimPrefix(state, "CONTAINER_"))
}

func (m *Manager) relist(ctx context.Context) (*snapshot, error) {
	ctx, cancel := cri.Ctx(ctx)
	defer cancel()
	sbs, err := m.rt.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return nil, err
	}
	cs, err := m.rt.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return nil, err
	}
	s := &snapshot{states: map[string]string{}, owner: map[string]types.UID{}, uids: map[types.UID]bool{}}
	for _, sb := range sbs.Items {
		uid := types.UID(sb.Labels[LabelPodUID])
		if uid == "" {
			continue // not a kubelet's
		}
		s.states[sb.Id], s.owner[sb.Id], s.uids[uid] = sb.State.String(), uid, true
	}
	for _, c := range cs.Containers {
		uid := types.UID(c.Labels[LabelPodUID])
		if uid == "" {
			continue
		}
		s.states[c.Id], s.owner[c.Id], s.uids[uid] = c.State.String(), uid, true
	}
	return s, nil
}
