package datapath

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultBPFFSDir is where a real node pins hivelet's maps and links.
const DefaultBPFFSDir = "/sys/fs/bpf/hivelet"

const standardBPFFS = "/sys/fs/bpf"

// isFS reports whether path lives on a filesystem with the given magic.
func isFS(path string, magic int64) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false, err
	}
	return int64(st.Type) == magic, nil
}

// EnsureBPFFS makes dir exist on a BPF filesystem. When no bpffs covers it,
// one is mounted: at /sys/fs/bpf for paths below it (what a node's init
// system would do), otherwise on dir itself.
func EnsureBPFFS(dir string) error {
	return ensureBPFFS(dir, standardBPFFS)
}

// ensureBPFFS is EnsureBPFFS with the standard mount point as a parameter.
// Below it, the mount comes first: an unmounted /sys/fs/bpf is a sysfs
// directory where nothing can be created.
func ensureBPFFS(dir, standard string) error {
	target := dir
	if strings.HasPrefix(filepath.Clean(dir)+"/", standard+"/") {
		target = standard
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create bpffs dir %s: %w", dir, err)
	}
	ok, err := isFS(target, unix.BPF_FS_MAGIC)
	if err != nil {
		return fmt.Errorf("statfs %s: %w", target, err)
	}
	if !ok {
		if err := unix.Mount("bpffs", target, "bpf", 0, "mode=0700"); err != nil {
			return fmt.Errorf("mount bpffs on %s: %w (is the agent running as root?)", target, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create bpffs dir %s: %w", dir, err)
	}
	return nil
}

// Cgroup2Root returns the mount point of the cgroup v2 hierarchy from
// /proc/mounts (e.g. /sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid
// hosts).
func Cgroup2Root() (string, error) {
	f, err := os.Open("/proc/mounts")
	if err != nil {
		return "", fmt.Errorf("find cgroup2 mount: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 3 && fields[2] == "cgroup2" {
			return fields[1], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("find cgroup2 mount: %w", err)
	}
	return "", errors.New("find cgroup2 mount: no cgroup2 filesystem in /proc/mounts (mount one, e.g. `mount -t cgroup2 none /sys/fs/cgroup/unified`)")
}

// cgroupID is the kernel's id of a cgroup v2 directory: its inode number.
func cgroupID(path string) (uint64, error) {
	ok, err := isFS(path, unix.CGROUP2_SUPER_MAGIC)
	if err != nil {
		return 0, fmt.Errorf("statfs cgroup %s: %w", path, err)
	}
	if !ok {
		return 0, fmt.Errorf("cgroup %s is not on a cgroup2 filesystem (give a path below the cgroup2 mount)", path)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat cgroup %s: %w", path, err)
	}
	return st.Ino, nil
}

// unmountOwnBPFFS unmounts dir when EnsureBPFFS mounted a bpffs on it:
// dir is on bpffs and its parent is not.
func unmountOwnBPFFS(dir string) error {
	onBPF, err := isFS(dir, unix.BPF_FS_MAGIC)
	if err != nil || !onBPF {
		return nil
	}
	if parentOnBPF, err := isFS(filepath.Dir(dir), unix.BPF_FS_MAGIC); err != nil || parentOnBPF {
		return nil
	}
	// Detached: a running agent's lock on the directory keeps the
	// mount busy, and its pins are gone already.
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount bpffs %s: %w", dir, err)
	}
	return nil
}

// LockPins takes an exclusive lock on the pin directory (flock on the
// directory itself: bpffs holds no regular files), so two agents on a
// node, an old and a new one during a rolling update, never write the
// same maps. It waits, telling wait once, while another holds it, until
// ctx ends; the lock goes with the returned release, or with the process.
func LockPins(ctx context.Context, dir string, wait func()) (release func(), err error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("lock bpffs dir %s: %w", dir, err)
	}
	// Polled rather than a blocking flock: an agent told to stop while it
	// waits must stop.
	for told := false; ; {
		err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EWOULDBLOCK) {
			break
		}
		if !told {
			wait()
			told = true
		}
		select {
		case <-ctx.Done():
			unix.Close(fd)
			return nil, fmt.Errorf("lock bpffs dir %s: %w", dir, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("lock bpffs dir %s: %w", dir, err)
	}
	return func() { unix.Close(fd) }, nil
}
