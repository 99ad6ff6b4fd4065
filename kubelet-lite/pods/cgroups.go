package pods

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// cgroupMounts is where the cgroup hierarchies are: every v1 controller
// directory and the unified (v2) tree, whichever the host has. systemctl
// stops slice units. Both are variables for tests.
var (
	cgroupMounts = "/sys/fs/cgroup"
	systemctl    = "systemctl"
)

// Cgroup drivers: how pod cgroups are named. The runtime must be set up
// with the same one (containerd's SystemdCgroup), as for the upstream
// kubelet.
const (
	DriverCgroupfs = "cgroupfs"
	DriverSystemd  = "systemd"
)

// podCgroupNames is the pod's cgroup as the kubelet names it before a
// driver makes it a path: kubepods, the QoS class unless Guaranteed,
// pod<uid>.
func podCgroupNames(pod *corev1.Pod) []string {
	names := []string{"kubepods"}
	switch QOSClass(pod) {
	case corev1.PodQOSBurstable:
		names = append(names, "burstable")
	case corev1.PodQOSBestEffort:
		names = append(names, "besteffort")
	}
	return append(names, "pod"+string(pod.UID))
}

// qosNames are the parents of pod cgroups, one per QoS class.
var qosNames = [][]string{{"kubepods"}, {"kubepods", "burstable"}, {"kubepods", "besteffort"}}

// cgroupNaming turns names into what the runtime is given and into
// directories, for one driver and cgroup root.
type cgroupNaming struct{ driver, root string }

// parent is the runtime's cgroup_parent for names: a path under root
// (cgroupfs), or the leaf slice's name, which systemd places itself
// (kubepods-burstable-pod<uid>.slice, dashes in names escaped as _).
func (c cgroupNaming) parent(names []string) string {
	if c.driver == DriverSystemd {
		return systemdSlice(names)
	}
	return path.Join(append([]string{c.root}, names...)...)
}

// dir is the directory of names relative to a hierarchy's mount point.
func (c cgroupNaming) dir(names []string) string {
	if c.driver != DriverSystemd {
		return c.parent(names)
	}
	parts := []string{"/"}
	for i := range names {
		parts = append(parts, systemdSlice(names[:i+1]))
	}
	return path.Join(parts...)
}

// podUID reads the pod UID back from a pod cgroup directory's base name
// under parent names; false when base is not a pod's.
func (c cgroupNaming) podUID(parentNames []string, base string) (types.UID, bool) {
	if c.driver != DriverSystemd {
		uid, ok := strings.CutPrefix(base, "pod")
		return types.UID(uid), ok && uid != ""
	}
	prefix := strings.TrimSuffix(systemdSlice(append(slices.Clone(parentNames), "pod")), ".slice")
	uid, ok := strings.CutPrefix(base, prefix)
	uid, ok2 := strings.CutSuffix(uid, ".slice")
	return types.UID(strings.ReplaceAll(uid, "_", "-")), ok && ok2 && uid != ""
}

// systemdSlice is the slice unit of names, as the upstream kubelet's
// systemd driver names it: each name escaped (- is the slice separator,
// so a name's own dashes become _), joined by -.
func systemdSlice(names []string) string {
	esc := make([]string, len(names))
	for i, n := range names {
		esc[i] = strings.ReplaceAll(n, "-", "_")
	}
	return strings.Join(esc, "-") + ".slice"
}

// CgroupParent is the pod sandbox's cgroup parent for driver under root.
func CgroupParent(driver, root string, pod *corev1.Pod) string {
	return cgroupNaming{driver, root}.parent(podCgroupNames(pod))
}

func (m *Manager) naming() cgroupNaming { return cgroupNaming{m.cfg.CgroupDriver, m.cfg.CgroupRoot} }

// removePodCgroups deletes the pod's cgroup directory in every hierarchy
// once its containers are gone: the runtime removes container cgroups but
// never the pod's parent. Under systemd the slice unit is stopped first,
// which removes it where systemd manages it. Deepest first; a busy
// directory is left for the next try.
func (m *Manager) removePodCgroups(pod *corev1.Pod) {
	if pod == nil {
		return
	}
	names := podCgroupNames(pod)
	if m.cfg.CgroupDriver == DriverSystemd {
		m.stopSlice(systemdSlice(names))
	}
	rel := m.naming().dir(names)
	dirs := []string{filepath.Join(cgroupMounts, rel)}
	hier, _ := filepath.Glob(filepath.Join(cgroupMounts, "*"))
	for _, h := range hier {
		dirs = append(dirs, filepath.Join(h, rel))
	}
	for _, d := range dirs {
		if err := removeTree(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			m.log.Warn("Removing a pod cgroup failed", "path", d, "error", err)
		}
	}
}

// stopSlice stops a pod's slice unit, as the upstream kubelet's systemd
// driver does over D-Bus: systemctl speaks it for us.
func (m *Manager) stopSlice(unit string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, systemctl, "stop", unit).CombinedOutput()
	if err != nil {
		m.log.Warn("Stopping a pod's slice failed", "unit", unit, "error", err, "output", strings.TrimSpace(string(out)))
	}
}

// sweepCgroups removes the pod cgroups, in every hierarchy, of pods that
// are neither running here nor known to a source: what a kubelet that
// stopped (or crashed) before cleaning up, or a pod deleted while it was
// down, left behind. Their QoS class is not known any more, so every
// class's parent is looked at. Busy directories stay for the next sweep.
func (m *Manager) sweepCgroups(keep func(types.UID) bool) {
	hier, _ := filepath.Glob(filepath.Join(cgroupMounts, "*"))
	hier = append(hier, cgroupMounts)
	n := m.naming()
	for _, h := range hier {
		for _, q := range qosNames {
			ents, _ := os.ReadDir(filepath.Join(h, n.dir(q)))
			for _, e := range ents {
				uid, ok := n.podUID(q, e.Name())
				if !e.IsDir() || !ok || keep(uid) {
					continue
				}
				d := filepath.Join(h, n.dir(q), e.Name())
				if m.cfg.CgroupDriver == DriverSystemd {
					m.stopSlice(e.Name())
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
