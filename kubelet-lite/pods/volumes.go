package pods

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// tokenRefreshAt is the share of a projected token's lifetime after which
// it is requested again, as the kubelet does (80%).
const tokenRefreshAt = 0.8

func (m *Manager) podDir(uid string) string { return filepath.Join(m.cfg.RootDir, "pods", uid) }

func (m *Manager) volumeDir(uid, name string) string {
	return filepath.Join(m.podDir(uid), "volumes", name)
}

// setupVolumes makes every volume of the pod ready on the node and
// returns the host path of each by name. Volumes read from the API
// (configMap, secret, projected tokens) are rewritten on every call, so
// their content follows the objects and tokens are renewed.
func (m *Manager) setupVolumes(ctx context.Context, pod *corev1.Pod) (map[string]string, error) {
	paths := map[string]string{}
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		dir := m.volumeDir(string(pod.UID), v.Name)
		var err error
		switch {
		case v.EmptyDir != nil:
			err = m.emptyDir(dir, v.EmptyDir)
		case v.HostPath != nil:
			dir, err = hostPath(v.HostPath)
		case v.ConfigMap != nil:
			err = m.writeFiles(dir, v.ConfigMap.DefaultMode, func() (map[string][]byte, error) {
				return m.configMapFiles(ctx, pod.Namespace, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional)
			})
		case v.Secret != nil:
			err = m.writeFiles(dir, v.Secret.DefaultMode, func() (map[string][]byte, error) {
				return m.secretFiles(ctx, pod.Namespace, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional)
			})
		case v.DownwardAPI != nil:
			err = m.writeFiles(dir, v.DownwardAPI.DefaultMode, func() (map[string][]byte, error) {
				return downwardFiles(pod, v.DownwardAPI.Items)
			})
		case v.Projected != nil:
			err = m.writeFiles(dir, v.Projected.DefaultMode, func() (map[string][]byte, error) {
				return m.projectedFiles(ctx, pod, dir, v.Projected)
			})
		default:
			return nil, fmt.Errorf("volume %s: this volume type is not supported by kubelet-lite (emptyDir, hostPath, configMap, secret, downwardAPI and projected are)", v.Name)
		}
		if err != nil {
			return nil, fmt.Errorf("volume %s: %w", v.Name, err)
		}
		paths[v.Name] = dir
	}
	return paths, nil
}

func (m *Manager) emptyDir(dir string, e *corev1.EmptyDirVolumeSource) error {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	if e.Medium != corev1.StorageMediumMemory {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil && st.Type == unix.TMPFS_MAGIC {
		return nil // mounted by an earlier sync or kubelet run
	}
	opts := "mode=0777"
	if e.SizeLimit != nil && !e.SizeLimit.IsZero() {
		opts += ",size=" + strconv.FormatInt(e.SizeLimit.Value(), 10)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount tmpfs: %w", err)
	}
	return nil
}

func hostPath(h *corev1.HostPathVolumeSource) (string, error) {
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

// writeFiles replaces the volume's files with what files returns:
// written to a fresh directory, then swapped in by renaming a symlink, so
// a container never reads half an update (the kubelet's atomic writer
// layout: ..data → ..timestamp, and a link per file).
func (m *Manager) writeFiles(dir string, mode *int32, files func() (map[string][]byte, error)) error {
	content, err := files()
	if err != nil {
		return err
	}
	perm := os.FileMode(0o644)
	if mode != nil {
		perm = os.FileMode(*mode) & 0o777
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if same(dir, content) {
		return nil
	}
	ts := "..data_" + strconv.FormatInt(time.Now().UnixNano(), 10)
	for name, data := range content {
		p := filepath.Join(dir, ts, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, perm); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, ts), 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(ts, tmp); err != nil {
		return err
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		return err
	}
	for name := range content {
		top := strings.SplitN(name, "/", 2)[0]
		link := filepath.Join(dir, top)
		if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
			if err := os.Symlink(filepath.Join("..data", top), link); err != nil {
				return err
			}
		}
	}
	if old != "" && old != ts {
		_ = os.RemoveAll(filepath.Join(dir, old))
	}
	return nil
}

// same reports whether the volume already holds exactly content.
func same(dir string, content map[string][]byte) bool {
	for name, data := range content {
		cur, err := os.ReadFile(filepath.Join(dir, "..data", name))
		if err != nil || string(cur) != string(data) {
			return false
		}
	}
	return len(content) > 0
}

func keysToFiles(data map[string][]byte, items []corev1.KeyToPath) (map[string][]byte, error) {
	out := map[string][]byte{}
	if len(items) == 0 {
		for k, v := range data {
			out[k] = v
		}
		return out, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			return nil, fmt.Errorf("no key %q", it.Key)
		}
		out[it.Path] = v
	}
	return out, nil
}

func (m *Manager) configMapFiles(ctx context.Context, ns, name string, items []corev1.KeyToPath, optional *bool) (map[string][]byte, error) {
	if m.client == nil {
		return nil, fmt.Errorf("configMap %s needs an API server", name)
	}
	cm, err := m.client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if optional != nil && *optional {
			return map[string][]byte{}, nil
		}
		return nil, fmt.Errorf("configmap %s/%s: %w", ns, name, err)
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return keysToFiles(data, items)
}

func (m *Manager) secretFiles(ctx context.Context, ns, name string, items []corev1.KeyToPath, optional *bool) (map[string][]byte, error) {
	if m.client == nil {
		return nil, fmt.Errorf("secret %s needs an API server", name)
	}
	s, err := m.client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if optional != nil && *optional {
			return map[string][]byte{}, nil
		}
		return nil, fmt.Errorf("secret %s/%s: %w", ns, name, err)
	}
	return keysToFiles(s.Data, items)
}

func downwardFiles(pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, it := range items {
		if it.FieldRef == nil {
			return nil, fmt.Errorf("downwardAPI %s: only fieldRef is supported", it.Path)
		}
		var v string
		switch it.FieldRef.FieldPath {
		case "metadata.name":
			v = pod.Name
		case "metadata.namespace":
			v = pod.Namespace
		case "metadata.uid":
			v = string(pod.UID)
		case "metadata.labels":
			v = formatMap(pod.Labels)
		case "metadata.annotations":
			v = formatMap(pod.Annotations)
		default:
			return nil, fmt.Errorf("downwardAPI %s: field %q is not supported", it.Path, it.FieldRef.FieldPath)
		}
		out[it.Path] = []byte(v)
	}
	return out, nil
}

func formatMap(m map[string]string) string {
	var lines []string
	for k, v := range m {
		lines = append(lines, k+"="+strconv.Quote(v))
	}
	sortStrings(lines)
	return strings.Join(lines, "\n")
}

// projectedFiles merges a projected volume's sources; a service-account
// token is requested from the TokenRequest API, bound to the pod, and
// requested again once 80% of its lifetime has passed.
func (m *Manager) projectedFiles(ctx context.Context, pod *corev1.Pod, dir string, p *corev1.ProjectedVolumeSource) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, src := range p.Sources {
		var files map[string][]byte
		var err error
		switch {
		case src.ServiceAccountToken != nil:
			files, err = m.tokenFile(ctx, pod, dir, src.ServiceAccountToken)
		case src.ConfigMap != nil:
			files, err = m.configMapFiles(ctx, pod.Namespace, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional)
		case src.Secret != nil:
			files, err = m.secretFiles(ctx, pod.Namespace, src.Secret.Name, src.Secret.Items, src.Secret.Optional)
		case src.DownwardAPI != nil:
			files, err = downwardFiles(pod, src.DownwardAPI.Items)
		default:
			err = errors.New("projected source type not supported by kubelet-lite")
		}
		if err != nil {
			return nil, err
		}
		for k, v := range files {
			out[k] = v
		}
	}
	return out, nil
}

func (m *Manager) tokenFile(ctx context.Context, pod *corev1.Pod, dir string, t *corev1.ServiceAccountTokenProjection) (map[string][]byte, error) {
	if m.client == nil {
		return nil, errors.New("a service-account token needs an API server")
	}
	ttl := int64(3600)
	if t.ExpirationSeconds != nil {
		ttl = *t.ExpirationSeconds
	}
	path := filepath.Join(dir, "..data", t.Path)
	if st, err := os.Stat(path); err == nil && time.Since(st.ModTime()) < time.Duration(float64(ttl)*tokenRefreshAt)*time.Second {
		cur, err := os.ReadFile(path)
		if err == nil {
			return map[string][]byte{t.Path: cur}, nil
		}
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &ttl,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if t.Audience != "" {
		req.Spec.Audiences = []string{t.Audience}
	}
	tr, err := m.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("request a token for service account %s/%s: %w", pod.Namespace, sa, err)
	}
	return map[string][]byte{t.Path: []byte(tr.Status.Token)}, nil
}

// mounts turns a container's volumeMounts into CRI mounts.
func mounts(c *corev1.Container, paths map[string]string) ([]*runtimeapi.Mount, error) {
	var out []*runtimeapi.Mount
	for _, vm := range c.VolumeMounts {
		host, ok := paths[vm.Name]
		if !ok {
			return nil, fmt.Errorf("volumeMount %s: no volume of that name", vm.Name)
		}
		if vm.SubPath != "" {
			host = filepath.Join(host, vm.SubPath)
			if err := os.MkdirAll(host, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return nil, err
			}
		}
		out = append(out, &runtimeapi.Mount{ContainerPath: vm.MountPath, HostPath: host, Readonly: vm.ReadOnly})
	}
	return out, nil
}

// cleanupVolumes unmounts memory-backed volumes and removes the pod's
// directory once its containers are gone.
func (m *Manager) cleanupVolumes(uid string) {
	vols, _ := filepath.Glob(filepath.Join(m.podDir(uid), "volumes", "*"))
	for _, v := range vols {
		var st unix.Statfs_t
		if unix.Statfs(v, &st) != nil || st.Type != unix.TMPFS_MAGIC {
			continue
		}
		if err := unix.Unmount(v, unix.MNT_DETACH); err != nil {
			m.log.Warn("Unmounting a pod volume failed", "path", v, "error", err)
		}
	}
	if err := os.RemoveAll(m.podDir(uid)); err != nil {
		m.log.Warn("Removing a pod's directory failed", "uid", uid, "error", err)
	}
}
