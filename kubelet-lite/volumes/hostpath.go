package volumes

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// HostPath makes a hostPath volume's path ready as its type asks
// (creating a directory or file for the OrCreate types, checking the
// others) and returns it. The path must be absolute, without "..": it
// comes from a pod spec or a PersistentVolume.
func HostPath(h *corev1.HostPathVolumeSource) (string, error) {
	if !filepath.IsAbs(h.Path) || CheckSubPath(strings.TrimPrefix(h.Path, "/")) != nil {
		return "", fmt.Errorf("hostPath %q: must be absolute, without \"..\"", h.Path)
	}
	typ := corev1.HostPathUnset
	if h.Type != nil {
		typ = *h.Type
	}
	st, err := os.Stat(h.Path)
	switch typ {
	case corev1.HostPathDirectoryOrCreate:
		if errors.Is(err, os.ErrNotExist) {
			return h.Path, os.MkdirAll(h.Path, 0o755)
		}
	case corev1.HostPathFileOrCreate:
		if errors.Is(err, os.ErrNotExist) {
			f, cerr := os.OpenFile(h.Path, os.O_CREATE|os.O_WRONLY, 0o644)
			if cerr == nil {
				f.Close()
			}
			return h.Path, cerr
		}
	case corev1.HostPathDirectory:
		if err != nil || !st.IsDir() {
			return "", fmt.Errorf("hostPath %s is not a directory", h.Path)
		}
	case corev1.HostPathFile:
		if err != nil || !st.Mode().IsRegular() {
			return "", fmt.Errorf("hostPath %s is not a file", h.Path)
		}
	case corev1.HostPathSocket:
		if err != nil || st.Mode()&os.ModeSocket == 0 {
			return "", fmt.Errorf("hostPath %s is not a socket", h.Path)
		}
	}
	return h.Path, nil
}
