package pods

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hivelet/hivelet/kubelet-lite/cri"
	"github.com/hivelet/hivelet/kubelet-lite/volumes"
)

// DefaultPodLogsDir is the upstream kubelet's podLogsDir.
const DefaultPodLogsDir = "/var/log/pods"

// LogRotatePeriod is how often container logs are checked for size.
const LogRotatePeriod = 10 * time.Second

func (m *Manager) podLogsDir() string {
	if m.cfg.PodLogsDir == "" {
		return DefaultPodLogsDir
	}
	return m.cfg.PodLogsDir
}

// removePodLogs removes the log directory of pod uid (its name is not
// needed: the directory ends in the UID).
func (m *Manager) removePodLogs(uid types.UID) {
	dirs, _ := filepath.Glob(filepath.Join(m.podLogsDir(), "*_*_"+string(uid)))
	for _, d := range dirs {
		if err := volumes.RemovePodDir(d); err != nil {
			m.log.Warn("Removing a pod's logs failed", "dir", d, "error", err)
		}
	}
}

// removeContainerLog removes a container's log and its rotated copies,
// when the container itself is removed.
func removeContainerLog(path string) {
	if path == "" {
		return
	}
	old, _ := filepath.Glob(path + ".*")
	for _, p := range append(old, path) {
		_ = os.Remove(p)
	}
}

// RunLogRotation rotates running containers' logs until ctx ends: a log
// past ContainerLogMaxSize is renamed with a timestamp and the runtime
// reopens it; at most ContainerLogMaxFiles files per container are kept
// (the live one included), the oldest go first.
func (m *Manager) RunLogRotation(ctx context.Context) {
	if m.cfg.ContainerLogMaxSize <= 0 {
		return
	}
	t := time.NewTicker(LogRotatePeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := m.rotateLogs(ctx); err != nil {
			m.log.Warn("Rotating container logs failed; retrying", "error", err)
		}
	}
}

func (m *Manager) rotateLogs(ctx context.Context) error {
	ctx, cancel := cri.Ctx(ctx)
	defer cancel()
	list, err := m.rt.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	var errs []error
	for _, c := range list.Containers {
		if c.Labels[LabelPodUID] == "" {
			continue
		}
		st, err := m.rt.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: c.Id})
		if err != nil || st.Status.LogPath == "" {
			continue
		}
		if err := m.rotateLog(ctx, c.Id, st.Status.LogPath); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) rotateLog(ctx context.Context, id, path string) error {
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() < m.cfg.ContainerLogMaxSize {
		return nil
	}
	rotated := path + "." + time.Now().UTC().Format("20060102-150405.000000")
	if err := os.Rename(path, rotated); err != nil {
		return fmt.Errorf("rotate %s: %w", path, err)
	}
	if _, err := m.rt.Runtime.ReopenContainerLog(ctx, &runtimeapi.ReopenContainerLogRequest{ContainerId: id}); err != nil {
		// The runtime still writes the renamed file: put it back.
		_ = os.Rename(rotated, path)
		return fmt.Errorf("reopen the log of container %s: %w", id, err)
	}
	old, _ := filepath.Glob(path + ".*")
	slices.Sort(old) // timestamps sort by age
	keep := max(m.cfg.ContainerLogMaxFiles-1, 1)
	for _, p := range old[:max(len(old)-keep, 0)] {
		if strings.HasPrefix(filepath.Base(p), filepath.Base(path)+".") {
			_ = os.Remove(p)
		}
	}
	return nil
}
