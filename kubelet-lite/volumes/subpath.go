package volumes

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrEscapes is wrapped by errors for a subPath that leaves its volume,
// through "..", an absolute path or a link pointing out.
var ErrEscapes = errors.New("subPath leaves its volume")

// resolveBeneath keeps every lookup inside the starting directory: ".."
// and links (absolute or relative) may not climb above it, and /proc
// magic links are refused. Links that stay inside are followed, as the
// upstream kubelet follows them after checking they stay in the volume.
const resolveBeneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS

// CheckSubPath refuses what the API server refuses in a subPath: an
// absolute path or a ".." component.
func CheckSubPath(sub string) error {
	if sub == "" {
		return nil
	}
	if filepath.IsAbs(sub) {
		return fmt.Errorf("subPath %q: %w (absolute)", sub, ErrEscapes)
	}
	for _, part := range strings.Split(sub, "/") {
		if part == ".." {
			return fmt.Errorf("subPath %q: %w (\"..\")", sub, ErrEscapes)
		}
	}
	return nil
}

// OpenSubPath opens base/sub as an O_PATH descriptor resolved by the
// kernel beneath base, creating missing directories on the way (as the
// kubelet does for a subPath that does not exist yet). A link anywhere
// on the way that points outside base fails with ErrEscapes. base is
// trusted (the kubelet's own volume directory or an admin's hostPath).
func OpenSubPath(base, sub string) (*os.File, error) {
	if err := CheckSubPath(sub); err != nil {
		return nil, err
	}
	root, err := unix.Open(base, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open volume %s: %w", base, err)
	}
	defer unix.Close(root)
	clean := filepath.Clean(sub)
	if clean == "." || clean == "" {
		fd, err := unix.Openat2(root, ".", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: resolveBeneath})
		if err != nil {
			return nil, fmt.Errorf("open volume %s: %w", base, err)
		}
		return os.NewFile(uintptr(fd), base), nil
	}
	fd, err := openBeneath(root, clean)
	if errors.Is(err, unix.ENOENT) {
		fd, err = mkdirBeneath(root, clean)
	}
	if err != nil {
		return nil, subPathErr(base, sub, err)
	}
	return os.NewFile(uintptr(fd), filepath.Join(base, clean)), nil
}

func openBeneath(dir int, path string) (int, error) {
	for {
		fd, err := unix.Openat2(dir, path, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: resolveBeneath})
		if err != unix.EAGAIN { // a rename raced the lookup: look again
			return fd, err
		}
	}
}

// mkdirBeneath creates the missing directories of path one component at
// a time, each looked up beneath the one before, so a link planted
// between two steps cannot redirect the walk.
func mkdirBeneath(root int, path string) (int, error) {
	cur, err := unix.Dup(root)
	if err != nil {
		return -1, err
	}
	for _, part := range strings.Split(path, "/") {
		if part == "" || part == "." {
			continue
		}
		next, err := openBeneath(cur, part)
		if errors.Is(err, unix.ENOENT) {
			if err = unix.Mkdirat(cur, part, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
				unix.Close(cur)
				return -1, err
			}
			next, err = openBeneath(cur, part)
		}
		unix.Close(cur)
		if err != nil {
			return -1, err
		}
		cur = next
	}
	return cur, nil
}

func subPathErr(base, sub string, err error) error {
	if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ELOOP) {
		return fmt.Errorf("subPath %q of volume %s: %w (a link points outside the volume)", sub, base, ErrEscapes)
	}
	return fmt.Errorf("subPath %q of volume %s: %w", sub, base, err)
}

// BindSubPath bind-mounts what f refers to onto target, creating target
// as a file or directory to match. The source is the descriptor itself
// (/proc/self/fd/N), so a container that swaps a path component for a
// link after the lookup changes nothing: the mount is of the inode that
// was resolved beneath the volume. A mount already on target (an earlier
// attempt of the container) is replaced.
func BindSubPath(f *os.File, target string) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("stat subPath %s: %w", f.Name(), err)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
		return fmt.Errorf("create subPath mount dir: %w", err)
	}
	Unmount(target)
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if err := os.Mkdir(target, 0o750); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create subPath mount point: %w", err)
		}
	} else {
		fd, err := unix.Open(target, unix.O_CREAT|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o640)
		if err != nil {
			return fmt.Errorf("create subPath mount point: %w", err)
		}
		unix.Close(fd)
	}
	src := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	if err := unix.Mount(src, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind subPath %s onto %s: %w", f.Name(), target, err)
	}
	return nil
}

// Unmount takes every mount off path (lazily: a container may still hold
// one), not following a link at path itself.
func Unmount(path string) {
	for unix.Unmount(path, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW) == nil {
	}
}
