package pods

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hivelet/hivelet/kubelet-lite/logs"
)

// Limits of a termination message, the upstream kubelet's: what the file
// holds is cut at 4 KiB; the log fallback is the last 80 lines, at most
// 2 KiB.
const (
	maxTerminationMessage = 4096
	fallbackLogLines      = 80
	fallbackLogBytes      = 2048
)

// terminationMount gives container c a fresh, world-writable file at its
// terminationMessagePath (any user the container runs as may write it);
// the kubelet reads it back once the container exits.
func (m *Manager) terminationMount(pod *corev1.Pod, c *corev1.Container) (*runtimeapi.Mount, error) {
	if c.TerminationMessagePath == "" {
		return nil, nil
	}
	dir := filepath.Join(m.podDir(string(pod.UID)), "containers", c.Name)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create termination message file: %w", err)
	}
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	path := filepath.Join(dir, hex.EncodeToString(id))
	fd, err := unix.Open(path, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o666)
	if err != nil {
		return nil, fmt.Errorf("create termination message file: %w", err)
	}
	err = unix.Fchmod(fd, 0o666) // past the umask
	unix.Close(fd)
	if err != nil {
		return nil, fmt.Errorf("create termination message file: %w", err)
	}
	return &runtimeapi.Mount{ContainerPath: c.TerminationMessagePath, HostPath: path}, nil
}

// terminationMessage is what an exited container left: the runtime's
// message, then the file at its terminationMessagePath, else (with
// FallbackToLogsOnError and a failure) the end of its log.
func terminationMessage(st *runtimeapi.ContainerStatus, c *corev1.Container) string {
	msg := ""
	if c != nil && c.TerminationMessagePath != "" {
		for _, mnt := range st.Mounts {
			if mnt.ContainerPath == c.TerminationMessagePath {
				msg = readLimited(mnt.HostPath, maxTerminationMessage)
			}
		}
	}
	if msg == "" && c != nil && c.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError && st.ExitCode != 0 && st.LogPath != "" {
		msg, _ = logs.Tail(st.LogPath, fallbackLogLines, fallbackLogBytes)
	}
	switch {
	case st.Message == "":
		return msg
	case msg == "":
		return st.Message
	}
	return st.Message + ": " + msg
}

// readLimited reads at most n bytes of a file the kubelet made, never
// through a link.
func readLimited(path string, n int64) string {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(f, n))
	return string(b)
}
