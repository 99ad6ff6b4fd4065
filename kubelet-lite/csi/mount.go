package csi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/hivelet/hivelet/kubelet-lite/volumes"
)

// record is what vol_data.json holds: enough to tear a volume down after
// a restart, with no API object (the pod may be gone). The keys are
// upstream's.
type record struct {
	Driver     string `json:"driverName"`
	Handle     string `json:"volumeHandle"`
	Spec       string `json:"specVolID"`
	Mode       string `json:"volumeLifecycleMode"`
	Node       string `json:"nodeName"`
	Attachment string `json:"attachmentID,omitempty"`
	// ReadOnly is hivelet's: how containers mount an adopted volume.
	ReadOnly bool `json:"readOnly,omitempty"`
}

// SetUp makes one CSI volume of a pod ready (attached, staged,
// published) and returns its mount point and whether containers must
// mount it read-only. It is cheap once the volume is up.
func (m *Manager) SetUp(ctx context.Context, pod *corev1.Pod, v *corev1.Volume) (string, bool, error) {
	uid := string(pod.UID)
	dir := m.volumeDir(uid, v.Name)
	target := filepath.Join(dir, "mount")
	m.mu.Lock()
	ro, done := m.published[target]
	hv, isHost := m.hostPaths[target]
	m.mu.Unlock()
	if done {
		return target, ro, nil
	}
	if isHost {
		return hv.path, hv.readOnly, nil
	}
	if rec, err := readRecord(dir); err == nil && mounted(target) {
		// Published before this kubelet started: adopted as it is, with
		// no need of the API server or the driver to be back first.
		m.markPublished(target, rec.ReadOnly)
		m.log.Info("CSI volume adopted", "pod", pod.Namespace+"/"+pod.Name, "volume", v.Name, "driver", rec.Driver, "handle", rec.Handle)
		return target, rec.ReadOnly, nil
	}
	src, err := m.resolve(ctx, pod, v)
	if err != nil {
		return "", false, err
	}
	if src.hostPath != nil {
		path, err := volumes.HostPath(src.hostPath)
		if err != nil {
			return "", false, err
		}
		m.mu.Lock()
		m.hostPaths[target] = hostVolume{path, src.readOnly}
		m.mu.Unlock()
		return path, src.readOnly, nil
	}
	d := m.driver(src.driver)
	if d == nil {
		return "", false, fmt.Errorf("CSI driver %s is not registered on this node (its node plugin registers through %s)", src.driver, m.RegistryDir())
	}
	rec := record{Driver: src.driver, Handle: src.handle, Spec: v.Name, Node: m.node, Mode: string(storagev1.VolumeLifecyclePersistent), ReadOnly: src.readOnly}
	if src.inline {
		rec.Mode = string(storagev1.VolumeLifecycleEphemeral)
	}
	var publishCtx map[string]string
	if src.attach && !src.inline {
		rec.Attachment = attachmentName(src.handle, src.driver, m.node)
		if publishCtx, err = m.attached(ctx, rec.Attachment); err != nil {
			return "", false, err
		}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", false, err
	}
	// Recorded before anything is mounted, so a teardown finds even a
	// half-done setup.
	if err := writeRecord(dir, rec); err != nil {
		return "", false, err
	}
	gid, delegate := fsGroup(pod, d, src)
	mountGroup := ""
	if gid >= 0 && delegate {
		mountGroup = strconv.Itoa(gid)
	}
	capability := src.capability(d, mountGroup)

	m.opMu.Lock()
	defer m.opMu.Unlock()
	staging := ""
	if d.stage && !src.inline {
		staging = m.stagingDir(src.driver, src.handle)
		if err := m.stageVolume(ctx, d, src, staging, capability, publishCtx); err != nil {
			return "", false, err
		}
	}
	secret, err := m.secrets(ctx, src.publishSecret)
	if err != nil {
		return "", false, err
	}
	cctx, cancel := context.WithTimeout(ctx, mountTimeout)
	defer cancel()
	_, err = d.node.NodePublishVolume(cctx, &csipb.NodePublishVolumeRequest{
		VolumeId: src.handle, PublishContext: publishCtx, StagingTargetPath: staging, TargetPath: target,
		VolumeCapability: capability, Readonly: src.readOnly, Secrets: secret, VolumeContext: src.attrs})
	if err != nil {
		return "", false, fmt.Errorf("CSI driver %s: NodePublishVolume %s: %w", src.driver, src.handle, err)
	}
	if gid >= 0 && !delegate && !src.readOnly && !(onRootMismatch(pod) && volumes.GroupSet(target, gid)) {
		if err := volumes.SetGroup(target, gid); err != nil {
			return "", false, fmt.Errorf("fsGroup on CSI volume %s: %w", v.Name, err)
		}
	}
	m.markPublished(target, src.readOnly)
	m.log.Info("CSI volume published", "pod", pod.Namespace+"/"+pod.Name, "volume", v.Name, "driver", src.driver, "handle", src.handle)
	return target, src.readOnly, nil
}

func (m *Manager) markPublished(target string, ro bool) {
	m.mu.Lock()
	m.published[target] = ro
	m.mu.Unlock()
}

// attached waits, as the kubelet does, for the attach/detach controller
// and the driver's attacher to attach the volume to this node, and
// returns the attachment's metadata (NodeStage's publish context).
func (m *Manager) attached(ctx context.Context, name string) (map[string]string, error) {
	va, err := m.api.VolumeAttachment(ctx, name)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("waiting for VolumeAttachment %s: the attach/detach controller has not created it yet", name)
	}
	if err != nil {
		return nil, fmt.Errorf("read VolumeAttachment %s: %w", name, err)
	}
	if va.Spec.NodeName != m.node {
		return nil, fmt.Errorf("VolumeAttachment %s is for node %s, not this one", name, va.Spec.NodeName)
	}
	if !va.Status.Attached {
		if e := va.Status.AttachError; e != nil {
			return nil, fmt.Errorf("VolumeAttachment %s: attach failed: %s", name, e.Message)
		}
		return nil, fmt.Errorf("waiting for VolumeAttachment %s to be attached", name)
	}
	return va.Status.AttachmentMetadata, nil
}

// stageVolume stages a volume once for the node; staging an already
// staged volume is skipped (the CSI call is idempotent, but costs).
func (m *Manager) stageVolume(ctx context.Context, d *driver, src *source, staging string, capability *csipb.VolumeCapability, publishCtx map[string]string) error {
	if mounted(staging) {
		return nil
	}
	if err := os.MkdirAll(staging, 0o750); err != nil {
		return err
	}
	secret, err := m.secrets(ctx, src.stageSecret)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, mountTimeout)
	defer cancel()
	_, err = d.node.NodeStageVolume(cctx, &csipb.NodeStageVolumeRequest{VolumeId: src.handle, PublishContext: publishCtx,
		StagingTargetPath: staging, VolumeCapability: capability, Secrets: secret, VolumeContext: src.attrs})
	if err != nil {
		return fmt.Errorf("CSI driver %s: NodeStageVolume %s: %w", src.driver, src.handle, err)
	}
	return nil
}

// fsGroup returns the group the volume must be given (-1: none) and
// whether the driver applies it itself (VOLUME_MOUNT_GROUP).
func fsGroup(pod *corev1.Pod, d *driver, src *source) (int, bool) {
	sc := pod.Spec.SecurityContext
	if sc == nil || sc.FSGroup == nil || src.policy == storagev1.NoneFSGroupPolicy {
		return -1, false
	}
	if d.mountGroup {
		return int(*sc.FSGroup), true
	}
	if src.policy == storagev1.ReadWriteOnceWithFSTypeFSGroupPolicy &&
		(src.fsType == "" || src.accessMode != corev1.ReadWriteOnce && src.accessMode != corev1.ReadWriteOncePod) {
		return -1, false
	}
	return int(*sc.FSGroup), false
}

// onRootMismatch reports a pod whose fsGroupChangePolicy lets the walk
// be skipped when the volume's root already has the group.
func onRootMismatch(pod *corev1.Pod) bool {
	sc := pod.Spec.SecurityContext
	return sc != nil && sc.FSGroupChangePolicy != nil && *sc.FSGroupChangePolicy == corev1.FSGroupChangeOnRootMismatch
}

// mounted reports a mount point at exactly path.
func mounted(path string) bool {
	mps, err := volumes.MountsBeneath(path)
	if err != nil {
		return false
	}
	for _, mp := range mps {
		if mp == filepath.Clean(path) {
			return true
		}
	}
	return false
}

func writeRecord(dir string, rec record) error {
	raw, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+dataFile)
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, dataFile))
}

func readRecord(dir string) (record, error) {
	var rec record
	raw, err := os.ReadFile(filepath.Join(dir, dataFile))
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		return rec, fmt.Errorf("%s: %w", filepath.Join(dir, dataFile), err)
	}
	return rec, nil
}

// TearDown unpublishes every CSI volume of the pod with that UID,
// unstages those no other pod on the node uses, and removes their
// directories. It fails, leaving what it could not undo for the next
// try, when a driver is not registered or refuses.
func (m *Manager) TearDown(ctx context.Context, uid string) error {
	base := filepath.Join(m.root, "pods", uid, "volumes", pluginDir)
	if filepath.Base(uid) != uid || uid == ".." || uid == "." {
		return fmt.Errorf("tear down CSI volumes: invalid pod UID %q", uid)
	}
	m.mu.Lock()
	for target := range m.hostPaths {
		if strings.HasPrefix(target, filepath.Join(m.root, "pods", uid)+"/") {
			delete(m.hostPaths, target)
		}
	}
	m.mu.Unlock()
	entries, err := os.ReadDir(base)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tear down CSI volumes: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if err := m.tearDownOne(ctx, uid, filepath.Join(base, e.Name())); err != nil {
			errs = append(errs, fmt.Errorf("CSI volume %s: %w", e.Name(), err))
		}
	}
	if len(errs) == 0 {
		_ = os.Remove(base)
	}
	return errors.Join(errs...)
}

func (m *Manager) tearDownOne(ctx context.Context, uid, dir string) error {
	target := filepath.Join(dir, "mount")
	rec, err := readRecord(dir)
	if errors.Is(err, os.ErrNotExist) && !mounted(target) {
		return removeVolumeDir(dir) // never got as far as a record
	}
	if err != nil {
		return fmt.Errorf("no usable %s, so nothing says which driver unmounts it: %w", dataFile, err)
	}
	if err := checkDriverName(rec.Driver); err != nil {
		return err
	}
	d := m.driver(rec.Driver)
	if d == nil {
		return fmt.Errorf("CSI driver %s is not registered on this node: the volume stays until it is", rec.Driver)
	}
	m.opMu.Lock()
	defer m.opMu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, mountTimeout)
	defer cancel()
	_, err = d.node.NodeUnpublishVolume(cctx, &csipb.NodeUnpublishVolumeRequest{VolumeId: rec.Handle, TargetPath: target})
	if err != nil && status.Code(err) != codes.NotFound {
		return fmt.Errorf("CSI driver %s: NodeUnpublishVolume %s: %w", rec.Driver, rec.Handle, err)
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s after NodeUnpublishVolume: %w", target, err)
	}
	m.mu.Lock()
	delete(m.published, target)
	m.mu.Unlock()
	if d.stage && rec.Mode != string(storagev1.VolumeLifecycleEphemeral) && !m.inUse(uid, rec) {
		staging := m.stagingDir(rec.Driver, rec.Handle)
		_, err = d.node.NodeUnstageVolume(cctx, &csipb.NodeUnstageVolumeRequest{VolumeId: rec.Handle, StagingTargetPath: staging})
		if err != nil && status.Code(err) != codes.NotFound {
			return fmt.Errorf("CSI driver %s: NodeUnstageVolume %s: %w", rec.Driver, rec.Handle, err)
		}
		if err := os.Remove(staging); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %s after NodeUnstageVolume: %w", staging, err)
		}
		_ = os.Remove(filepath.Dir(staging))
	}
	m.log.Info("CSI volume unpublished", "uid", uid, "volume", rec.Spec, "driver", rec.Driver, "handle", rec.Handle)
	return removeVolumeDir(dir)
}

func removeVolumeDir(dir string) error {
	if err := os.Remove(filepath.Join(dir, dataFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Remove(filepath.Join(dir, "mount")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.Remove(dir)
}

// inUse reports another pod on the node with the same volume recorded:
// its staging must stay.
func (m *Manager) inUse(uid string, rec record) bool {
	podsDir := filepath.Join(m.root, "pods")
	recs, _ := filepath.Glob(filepath.Join(podsDir, "*", "volumes", pluginDir, "*", dataFile))
	for _, p := range recs {
		if strings.HasPrefix(p, filepath.Join(podsDir, uid)+"/") {
			continue
		}
		other, err := readRecord(filepath.Dir(p))
		if err == nil && other.Driver == rec.Driver && other.Handle == rec.Handle {
			return true
		}
	}
	return false
}
