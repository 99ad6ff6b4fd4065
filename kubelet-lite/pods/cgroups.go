package pods

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// cgroupMounts is where the cgroup hierarchies are: every v1 controller
// directory and the unified (v2) tree, whichever the host has.
const cgroupMounts = "/sys/fs/cgroup"

// removePodCgroups deletes the pod's cgroup directory in every hierarchy
// once its containers are gone: the runtime removes container cgroups but
// never the pod's parent. Deepest first; a busy directory is left for the
// next try.
func (m *Manager) removePodCgroups(pod *corev1.Pod) {
	if pod == nil {
		return
	}
	parent := CgroupParent(m.cfg.CgroupRoot, pod)
	dirs := []string{filepath.Join(cgroupMounts, parent)}
	hier, _ := filepath.Glob(filepath.Join(cgroupMounts, "*"))
	for _, h := range hier {
		dirs = append(dirs, filepath.Join(h, parent))
	}
	for _, d := range dirs {
		if err := removeTree(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			m.log.Warn("Removing a pod cgroup failed", "path", d, "error", err)
		}
	}
}

// qosParents are where CgroupParent puts pods, one per QoS class.
var qosParents = []string{"kubepods", "kubepods/burstable", "kubepods/besteffort"}

// sweepCgroups removes the pod cgroups, in every hierarchy, of pods that
// are neither running here nor known to a source: what a kubelet that
// stopped (or crashed) before cleaning up, or a pod deleted while it was
// down, left behind. Their QoS class is not known any more, so every
// class's parent is looked at. Busy directories stay for the next sweep.
func (m *Manager) sweepCgroups(keep func(types.UID) bool) {
	hier, _ := filepath.Glob(filepath.Join(cgroupMounts, "*"))
	hier = append(hier, cgroupMounts)
	for _, h := range hier {
		for _, q := range qosParents {
			dirs, _ := filepath.Glob(filepath.Join(h, m.cfg.CgroupRoot, q, "pod*"))
			for _, d := range dirs {
				uid := types.UID(strings.TrimPrefix(filepath.Base(d), "pod"))
				if keep(uid) {
					continue
				}
				if err := removeTree(d); err == nil {
					m.log.Info("Removed the cgroup of a pod no source has", "path", d)
				}
			}
		}
	}
}

// removeTree removes a cgroup directory and its children (cgroup
// directories only go with rmdir, never with their control files).
func removeTree(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return os.Remove(dir)
}
