package eviction

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// StatFs reads a file system's size, free space and device.
func StatFs(path string) (Fs, error) {
	var st unix.Statfs_t
	var s unix.Stat_t
	if err := unix.Statfs(path, &st); err != nil {
		return Fs{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	if err := unix.Stat(path, &s); err != nil {
		return Fs{}, fmt.Errorf("stat %s: %w", path, err)
	}
	bs := uint64(st.Bsize)
	return Fs{Dev: s.Dev, Capacity: st.Blocks * bs, Available: st.Bavail * bs, Inodes: st.Files, InodesFree: st.Ffree}, nil
}
