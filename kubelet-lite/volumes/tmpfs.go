package volumes

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// EnsureTmpfs makes dir a tmpfs mount (memory-backed emptyDir, Secret
// and projected token volumes: their content never reaches a disk) and
// reports whether it mounted one now. size 0 leaves the kernel's
// default. nosuid and nodev: a container cannot plant a setuid binary or
// a device node for another.
func EnsureTmpfs(dir string, size int64, mode os.FileMode) (bool, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("create %s: %w", dir, err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil && st.Type == unix.TMPFS_MAGIC {
		if mps, err := MountsBeneath(dir); err == nil && len(mps) > 0 && mps[len(mps)-1] == dir {
			return false, nil // mounted by an earlier sync or kubelet run
		}
	}
	opts := "mode=" + strconv.FormatUint(uint64(mode.Perm()), 8)
	if size > 0 {
		opts += ",size=" + strconv.FormatInt(size, 10)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return false, fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	return true, nil
}
