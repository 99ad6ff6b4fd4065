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

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hivelet/hivelet/kubelet-lite/csi"
	"github.com/hivelet/hivelet/kubelet-lite/volumes"
)

// tokenRefreshAt is the share of a projected token's lifetime after which
// it is requested again, as the kubelet does (80%).
const tokenRefreshAt = 0.8

func (m *Manager) podDir(uid string) string { return filepath.Join(m.cfg.RootDir, "pods", uid) }

func (m *Manager) volumeDir(uid, name string) string {
	return filepath.Join(m.podDir(uid), "volumes", name)
}

// podVolume is a volume ready on the node: where it is, and whether the
// kubelet mounts it read-only whatever the container asks.
type podVolume struct {
	path     string
	readOnly bool
}

// Volume files are 0644 unless the pod says otherwise, as the API server
// defaults defaultMode.
const defaultFileMode = 0o644

// setupVolumes makes every volume of the pod ready on the node and
// returns each by name. Volumes read from the API (configMap, secret,
// projected tokens) are rewritten when their content changed, so they
// follow their objects and tokens are renewed. The kubelet's views of
// API objects (configMap, secret, downwardAPI, projected) are always
// mounted read-only; secret and projected ones live on tmpfs.
func (m *Manager) setupVolumes(ctx context.Context, pod *corev1.Pod) (map[string]podVolume, error) {
	out := map[string]podVolume{}
	gid := -1
	if sc := pod.Spec.SecurityContext; sc != nil && sc.FSGroup != nil {
		gid = int(*sc.FSGroup)
	}
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		dir := m.volumeDir(string(pod.UID), v.Name)
		var err error
		ro := true
		switch {
		case v.EmptyDir != nil:
			ro = false
			err = m.emptyDir(dir, v.EmptyDir, gid)
		case v.HostPath != nil:
			ro = false
			dir, err = volumes.HostPath(v.HostPath)
		case v.ConfigMap != nil:
			err = m.publish(dir, false, gid, func() (map[string]volumes.File, error) {
				return m.configMapFiles(ctx, pod.Namespace, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional, fileMode(v.ConfigMap.DefaultMode))
			})
		case v.Secret != nil:
			err = m.publish(dir, true, gid, func() (map[string]volumes.File, error) {
				return m.secretFiles(ctx, pod.Namespace, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional, fileMode(v.Secret.DefaultMode))
			})
		case v.DownwardAPI != nil:
			err = m.publish(dir, false, gid, func() (map[string]volumes.File, error) {
				return m.downwardFiles(pod, v.DownwardAPI.Items, fileMode(v.DownwardAPI.DefaultMode))
			})
		case v.Projected != nil:
			err = m.publish(dir, true, gid, func() (map[string]volumes.File, error) {
				return m.projectedFiles(ctx, pod, dir, v.Projected)
			})
		case csi.Handles(v) && m.cfg.CSI != nil:
			dir, ro, err = m.cfg.CSI.SetUp(ctx, pod, v)
		default:
			return nil, fmt.Errorf("volume %s: this volume type is not supported by kubelet-lite (emptyDir, hostPath, configMap, secret, downwardAPI, projected, csi, persistentVolumeClaim and ephemeral are)", v.Name)
		}
		if err != nil {
			return nil, fmt.Errorf("volume %s: %w", v.Name, err)
		}
		out[v.Name] = podVolume{path: dir, readOnly: ro}
	}
	return out, nil
}

func fileMode(m *int32) os.FileMode {
	if m == nil {
		return defaultFileMode
	}
	return os.FileMode(*m) & 0o777
}

// publish writes a volume's files with the atomic writer, on a tmpfs
// first for secret content.
func (m *Manager) publish(dir string, memory bool, gid int, files func() (map[string]volumes.File, error)) error {
	content, err := files()
	if err != nil {
		return err
	}
	if memory {
		mounted, err := volumes.EnsureTmpfs(dir, 0, 0o755)
		if err != nil {
			return err
		}
		if mounted {
			m.writer.Forget(dir) // the mount hides anything written before
		}
	}
	_, err = m.writer.Write(dir, content, gid)
	return err
}

func (m *Manager) emptyDir(dir string, e *corev1.EmptyDirVolumeSource, gid int) error {
	_, err := os.Lstat(dir)
	fresh := errors.Is(err, os.ErrNotExist)
	if e.Medium == corev1.StorageMediumMemory {
		var size int64
		if e.SizeLimit != nil && e.SizeLimit.Sign() > 0 {
			size = e.SizeLimit.Value()
		}
		mounted, err := volumes.EnsureTmpfs(dir, size, 0o777)
		if err != nil {
			return err
		}
		fresh = fresh || mounted
	} else if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	if !fresh {
		return nil
	}
	// Past the umask: every user of the pod may write an emptyDir; with
	// an fsGroup the directory is that group's, and new files inherit it.
	mode := os.FileMode(0o777)
	if gid >= 0 {
		if err := os.Lchown(dir, -1, gid); err != nil {
			return fmt.Errorf("fsGroup: %w", err)
		}
		mode |= os.ModeSetgid
	}
	return os.Chmod(dir, mode)
}

func keysToFiles(data map[string][]byte, items []corev1.KeyToPath, mode os.FileMode) (map[string]volumes.File, error) {
	out := map[string]volumes.File{}
	if len(items) == 0 {
		for k, v := range data {
			out[k] = volumes.File{Data: v, Mode: mode}
		}
		return out, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			return nil, fmt.Errorf("no key %q", it.Key)
		}
		out[it.Path] = volumes.File{Data: v, Mode: itemMode(it.Mode, mode)}
	}
	return out, nil
}

func itemMode(m *int32, def os.FileMode) os.FileMode {
	if m == nil {
		return def
	}
	return os.FileMode(*m) & 0o777
}

func (m *Manager) configMapFiles(ctx context.Context, ns, name string, items []corev1.KeyToPath, optional *bool, mode os.FileMode) (map[string]volumes.File, error) {
	if m.client == nil {
		return nil, fmt.Errorf("configMap %s needs an API server", name)
	}
	cm, err := m.client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if optional != nil && *optional {
			return map[string]volumes.File{}, nil
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
	return keysToFiles(data, items, mode)
}

func (m *Manager) secretFiles(ctx context.Context, ns, name string, items []corev1.KeyToPath, optional *bool, mode os.FileMode) (map[string]volumes.File, error) {
	if m.client == nil {
		return nil, fmt.Errorf("secret %s needs an API server", name)
	}
	s, err := m.client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if optional != nil && *optional {
			return map[string]volumes.File{}, nil
		}
		return nil, fmt.Errorf("secret %s/%s: %w", ns, name, err)
	}
	return keysToFiles(s.Data, items, mode)
}

// downwardFiles renders a downward API volume: pod metadata and
// container resources (the fields the API server allows in volumes).
func (m *Manager) downwardFiles(pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, mode os.FileMode) (map[string]volumes.File, error) {
	out := map[string]volumes.File{}
	for _, it := range items {
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			v, err = volumeFieldValue(pod, it.FieldRef.FieldPath)
		case it.ResourceFieldRef != nil:
			v, err = resourceFor(pod, it.ResourceFieldRef, m.cfg.Allocatable)
		default:
			err = errors.New("needs fieldRef or resourceFieldRef")
		}
		if err != nil {
			return nil, fmt.Errorf("downwardAPI %s: %w", it.Path, err)
		}
		out[it.Path] = volumes.File{Data: []byte(v), Mode: itemMode(it.Mode, mode)}
	}
	return out, nil
}

// volumeFieldValue is a pod field for a downward API volume: labels and
// annotations whole (one key="value" per line, sorted) or by key.
func volumeFieldValue(pod *corev1.Pod, field string) (string, error) {
	switch field {
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	}
	return podFieldValue(pod, field)
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
func (m *Manager) projectedFiles(ctx context.Context, pod *corev1.Pod, dir string, p *corev1.ProjectedVolumeSource) (map[string]volumes.File, error) {
	mode := fileMode(p.DefaultMode)
	out := map[string]volumes.File{}
	for _, src := range p.Sources {
		var files map[string]volumes.File
		var err error
		switch {
		case src.ServiceAccountToken != nil:
			files, err = m.tokenFile(ctx, pod, dir, src.ServiceAccountToken, mode)
		case src.ConfigMap != nil:
			files, err = m.configMapFiles(ctx, pod.Namespace, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional, mode)
		case src.Secret != nil:
			files, err = m.secretFiles(ctx, pod.Namespace, src.Secret.Name, src.Secret.Items, src.Secret.Optional, mode)
		case src.DownwardAPI != nil:
			files, err = m.downwardFiles(pod, src.DownwardAPI.Items, mode)
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

// tokenFile returns the pod's service-account token: the one written
// before while it is younger than 80% of its life, else a new one.
func (m *Manager) tokenFile(ctx context.Context, pod *corev1.Pod, dir string, t *corev1.ServiceAccountTokenProjection, mode os.FileMode) (map[string]volumes.File, error) {
	if m.client == nil {
		return nil, errors.New("a service-account token needs an API server")
	}
	ttl := int64(3600)
	if t.ExpirationSeconds != nil {
		ttl = *t.ExpirationSeconds
	}
	if cur, since, ok := m.writer.Current(dir, t.Path); ok && time.Since(since) < time.Duration(float64(ttl)*tokenRefreshAt)*time.Second {
		return map[string]volumes.File{t.Path: {Data: cur, Mode: mode}}, nil
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
	return map[string]volumes.File{t.Path: {Data: []byte(tr.Status.Token), Mode: mode}}, nil
}

func (m *Manager) subPathDir(uid, volume, container string, index int) string {
	return filepath.Join(m.podDir(uid), "volume-subpaths", volume, container, strconv.Itoa(index))
}

// mounts turns a container's volumeMounts into CRI mounts. A subPath
// (or subPathExpr, expanded with the container's environment) is opened
// beneath its volume and bind-mounted under the pod's directory, and
// that bind is what the runtime mounts: a link in the volume cannot
// point the runtime anywhere else.
func (m *Manager) mounts(pod *corev1.Pod, c *corev1.Container, vols map[string]podVolume, env map[string]string) ([]*runtimeapi.Mount, error) {
	var out []*runtimeapi.Mount
	for i, vm := range c.VolumeMounts {
		v, ok := vols[vm.Name]
		if !ok {
			return nil, fmt.Errorf("volumeMount %s: no volume of that name", vm.Name)
		}
		host := v.path
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			sub = expand(vm.SubPathExpr, env)
		}
		if sub != "" {
			f, err := volumes.OpenSubPath(v.path, sub)
			if err != nil {
				return nil, fmt.Errorf("volumeMount %s: %w", vm.Name, err)
			}
			host = m.subPathDir(string(pod.UID), vm.Name, c.Name, i)
			err = volumes.BindSubPath(f, host)
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("volumeMount %s: %w", vm.Name, err)
			}
		}
		out = append(out, &runtimeapi.Mount{ContainerPath: vm.MountPath, HostPath: host, Readonly: vm.ReadOnly || v.readOnly})
	}
	return out, nil
}

// CSIVolumes is the CSI volume manager as the pod manager uses it.
type CSIVolumes interface {
	// SetUp mounts one of the pod's CSI, persistentVolumeClaim or
	// ephemeral volumes, returning where and whether read-only.
	SetUp(ctx context.Context, pod *corev1.Pod, v *corev1.Volume) (string, bool, error)
	// TearDown unmounts every CSI volume of the pod with that UID.
	TearDown(ctx context.Context, uid string) error
}

// teardownFinished tears down a finished pod's emptyDir volumes (their
// tmpfs unmounted) and CSI volumes, as upstream tears down the volumes
// of a terminated pod: an evicted pod's disk or memory comes back before
// it is deleted. False when a CSI volume is still up (tried again later).
func (m *Manager) teardownFinished(ctx context.Context, pod *corev1.Pod) bool {
	if uidProblems(string(pod.UID)) != nil {
		return true
	}
	for _, v := range pod.Spec.Volumes {
		if v.EmptyDir == nil {
			continue
		}
		if err := volumes.RemovePodDir(m.volumeDir(string(pod.UID), v.Name)); err != nil {
			m.log.Warn("Removing a finished pod's emptyDir failed", "pod", pod.Namespace+"/"+pod.Name, "volume", v.Name, "error", err)
		}
	}
	return m.teardownCSI(ctx, string(pod.UID))
}

// teardownCSI unmounts a pod's CSI volumes through their drivers; false
// when one is still up. The pod's directory must stay until they are
// all down: removing it would unmount them behind their drivers' backs.
func (m *Manager) teardownCSI(ctx context.Context, uid string) bool {
	if m.cfg.CSI == nil {
		return true
	}
	if err := m.cfg.CSI.TearDown(ctx, uid); err != nil {
		m.log.Warn("Tearing down a pod's CSI volumes failed; retrying", "uid", uid, "error", err)
		return false
	}
	return true
}

// cleanupPodFiles tears down the pod's CSI volumes through their
// drivers, then unmounts its tmpfs volumes and subPath binds and removes
// the pod's directory, never descending into a mount, and its container
// logs. False, with everything left for the next try, while a CSI volume
// is still up.
func (m *Manager) cleanupPodFiles(ctx context.Context, uid string) bool {
	if problems := uidProblems(uid); problems != nil {
		// Runtime labels name the UID of an orphan: never a path.
		m.log.Warn("Not removing files of a pod with an invalid UID", "uid", uid, "problems", problems)
		return true
	}
	if !m.teardownCSI(ctx, uid) {
		return false
	}
	dir := m.podDir(uid)
	m.writer.Forget(dir)
	if err := volumes.RemovePodDir(dir); err != nil {
		m.log.Warn("Removing a pod's directory failed", "uid", uid, "error", err)
	}
	m.removePodLogs(types.UID(uid))
	return true
}

// dirSweepPeriod spaces the looks for pod directories no pod owns any
// more (left by a teardown that failed, or by a pod deleted while the
// kubelet was down).
const dirSweepPeriod = 10 * time.Second

// sweepPodDirs removes the directories of pods that keep says are gone,
// their CSI volumes torn down first.
func (m *Manager) sweepPodDirs(ctx context.Context, keep func(types.UID) bool) {
	entries, err := os.ReadDir(filepath.Join(m.cfg.RootDir, "pods"))
	if err != nil {
		return
	}
	for _, e := range entries {
		uid := e.Name()
		if !e.IsDir() || uidProblems(uid) != nil || keep(types.UID(uid)) {
			continue
		}
		if m.cleanupPodFiles(ctx, uid) {
			m.log.Info("Removed the directory of a pod that is gone", "uid", uid)
		}
	}
}
