package pods

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/hivelet/hivelet/kubelet-lite/eviction"
)

// LocalUsage is the disk each active pod uses on the node beside its
// containers' writable layers: its container logs (by container) and its
// disk-backed emptyDir volumes (the pod's own), as upstream counts a
// pod's ephemeral storage for eviction.
func (m *Manager) LocalUsage() map[types.UID]eviction.PodUsage {
	out := map[types.UID]eviction.PodUsage{}
	for _, pod := range m.Active() {
		pu := eviction.PodUsage{Containers: map[string]uint64{}}
		for _, c := range allContainers(pod) {
			n := dirSize(filepath.Join(m.logDir(pod), c.Name))
			pu.Containers[c.Name] += n
			pu.Total += n
		}
		for _, v := range pod.Spec.Volumes {
			if v.EmptyDir != nil && v.EmptyDir.Medium != corev1.StorageMediumMemory {
				pu.Total += dirSize(m.volumeDir(string(pod.UID), v.Name))
			}
		}
		out[pod.UID] = pu
	}
	return out
}

// dirSize is the bytes allocated to the files beneath dir, on dir's file
// system only (a mount inside is another volume's) and never following
// a link.
func dirSize(dir string) uint64 {
	root, err := os.Lstat(dir)
	if err != nil || !root.IsDir() {
		return 0
	}
	dev := root.Sys().(*syscall.Stat_t).Dev
	var total uint64
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // gone meanwhile, or unreadable: not counted
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st := info.Sys().(*syscall.Stat_t)
		if st.Dev != dev {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		total += uint64(st.Blocks) * 512
		return nil
	})
	return total
}
