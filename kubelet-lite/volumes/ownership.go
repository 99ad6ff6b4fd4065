package volumes

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// SetGroup gives everything beneath root the group gid, readable and
// writable by it, directories searchable and setgid (new files inherit
// the group), as the kubelet applies a pod's fsGroup to a volume.
//
// The walk goes by descriptors: each entry is opened in its directory
// without following links, and changed through that descriptor. A volume
// can be shared with pods already running, which may swap a directory
// for a link while the walk runs; no chown or chmod then reaches outside
// the volume. Links themselves are left as they are.
func SetGroup(root string, gid int) error {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("set group of %s: %w", root, err)
	}
	defer unix.Close(fd)
	if err := setGroupDir(fd, gid); err != nil {
		return fmt.Errorf("set group of %s: %w", root, err)
	}
	return nil
}

// GroupSet reports a volume root that already has the group gid and the
// setgid bit (fsGroupChangePolicy OnRootMismatch then skips the walk).
func GroupSet(root string, gid int) bool {
	var st unix.Stat_t
	if unix.Lstat(root, &st) != nil {
		return false
	}
	return int(st.Gid) == gid && st.Mode&unix.S_IFMT == unix.S_IFDIR && st.Mode&unix.S_ISGID != 0 && st.Mode&0o070 == 0o070
}

func setGroupDir(dirfd, gid int) error {
	if err := setGroupFd(dirfd, gid, true); err != nil {
		return err
	}
	dup, err := unix.Dup(dirfd)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(dup), "dir")
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, name := range names {
		fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			continue // removed meanwhile
		}
		if err != nil {
			return err
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		switch {
		case err != nil:
		case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		case st.Mode&unix.S_IFMT == unix.S_IFDIR:
			unix.Close(fd)
			// Opened again to read it; O_NOFOLLOW refuses a link put
			// in its place since.
			fd, err = unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err == nil {
				err = setGroupDir(fd, gid)
			}
		default:
			err = setGroupFd(fd, gid, false)
		}
		if fd >= 0 {
			unix.Close(fd)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// setGroupFd changes the file behind fd (O_PATH descriptors included:
// chmod goes through its /proc/self/fd link, which names that file).
func setGroupFd(fd, gid int, dir bool) error {
	if err := unix.Fchownat(fd, "", -1, gid, unix.AT_EMPTY_PATH); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	mode := st.Mode&0o7777 | 0o060
	if dir {
		mode |= unix.S_ISGID | 0o010
	}
	return unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), mode)
}
