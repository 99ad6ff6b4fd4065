package csi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// ErrNotCSI is wrapped when a pod's claim is bound to a volume that is
// not a CSI one.
var ErrNotCSI = errors.New("not a CSI volume")

// source is what a pod's volume resolves to: everything NodeStageVolume
// and NodePublishVolume need.
type source struct {
	driver, handle string
	inline         bool // a CSI inline (ephemeral) volume: never staged or attached
	readOnly       bool
	fsType         string
	mountOptions   []string
	accessMode     corev1.PersistentVolumeAccessMode
	attrs          map[string]string
	stageSecret    *corev1.SecretReference
	publishSecret  *corev1.SecretReference
	policy         storagev1.FSGroupPolicy
	attach         bool
	// hostPath is set for a claim bound to a hostPath or local
	// PersistentVolume: a directory of the node, mounted as it is.
	hostPath *corev1.HostPathVolumeSource
}

// Handles reports the volumes this package mounts.
func Handles(v *corev1.Volume) bool {
	return v.CSI != nil || v.PersistentVolumeClaim != nil || v.Ephemeral != nil
}

// resolve reads the objects a pod's volume is mounted from.
func (m *Manager) resolve(ctx context.Context, pod *corev1.Pod, v *corev1.Volume) (*source, error) {
	if m.api == nil {
		return nil, errors.New("CSI and PersistentVolumeClaim volumes need an API server (--kubeconfig)")
	}
	var src *source
	var err error
	switch {
	case v.CSI != nil:
		src = &source{driver: v.CSI.Driver, handle: inlineHandle(string(pod.UID), v.Name), inline: true,
			readOnly: v.CSI.ReadOnly != nil && *v.CSI.ReadOnly, attrs: maps.Clone(v.CSI.VolumeAttributes),
			accessMode: corev1.ReadWriteOnce}
		if v.CSI.FSType != nil {
			src.fsType = *v.CSI.FSType
		}
		if ref := v.CSI.NodePublishSecretRef; ref != nil {
			// An inline volume reads secrets from the pod's namespace only.
			src.publishSecret = &corev1.SecretReference{Name: ref.Name, Namespace: pod.Namespace}
		}
	case v.PersistentVolumeClaim != nil:
		src, err = m.claimSource(ctx, pod, v.PersistentVolumeClaim.ClaimName, nil)
		if err == nil && v.PersistentVolumeClaim.ReadOnly {
			src.readOnly = true
		}
	case v.Ephemeral != nil:
		// The ephemeral volume controller names the claim after the pod
		// and the volume, and makes the pod its owner.
		src, err = m.claimSource(ctx, pod, pod.Name+"-"+v.Name, pod)
	default:
		return nil, fmt.Errorf("volume %s: not a CSI, persistentVolumeClaim or ephemeral volume", v.Name)
	}
	if err != nil {
		return nil, err
	}
	if src.hostPath != nil {
		return src, nil
	}
	if err := checkDriverName(src.driver); err != nil {
		return nil, err
	}
	if err := m.applyDriverObject(ctx, pod, src); err != nil {
		return nil, err
	}
	return src, nil
}

// claimSource follows a claim to its bound CSI PersistentVolume. owner,
// when set, must be the claim's controller (a generic ephemeral volume).
func (m *Manager) claimSource(ctx context.Context, pod *corev1.Pod, claim string, owner *corev1.Pod) (*source, error) {
	pvc, err := m.api.PersistentVolumeClaim(ctx, pod.Namespace, claim)
	if err != nil {
		return nil, fmt.Errorf("read PersistentVolumeClaim %s/%s: %w", pod.Namespace, claim, err)
	}
	if owner != nil {
		if ref := metav1.GetControllerOf(pvc); ref == nil || ref.UID != owner.UID {
			return nil, fmt.Errorf("PersistentVolumeClaim %s/%s was not created for this pod's ephemeral volume", pod.Namespace, claim)
		}
	}
	if pvc.DeletionTimestamp != nil {
		return nil, fmt.Errorf("PersistentVolumeClaim %s/%s is being deleted", pod.Namespace, claim)
	}
	if pvc.Status.Phase != corev1.ClaimBound || pvc.Spec.VolumeName == "" {
		return nil, fmt.Errorf("PersistentVolumeClaim %s/%s is not bound yet", pod.Namespace, claim)
	}
	pv, err := m.api.PersistentVolume(ctx, pvc.Spec.VolumeName)
	if err != nil {
		return nil, fmt.Errorf("read PersistentVolume %s: %w", pvc.Spec.VolumeName, err)
	}
	// A claim names its volume, but only the volume's claimRef proves
	// the binding: a claim must not mount someone else's volume.
	if ref := pv.Spec.ClaimRef; ref == nil || ref.UID != pvc.UID {
		return nil, fmt.Errorf("PersistentVolume %s is not bound to claim %s/%s", pv.Name, pod.Namespace, claim)
	}
	if pv.Spec.VolumeMode != nil && *pv.Spec.VolumeMode == corev1.PersistentVolumeBlock {
		return nil, fmt.Errorf("PersistentVolume %s: raw block volumes are not supported by kubelet-lite", pv.Name)
	}
	switch {
	case pv.Spec.HostPath != nil:
		return &source{hostPath: pv.Spec.HostPath}, nil
	case pv.Spec.Local != nil:
		// A local volume is a directory the administrator prepared: it
		// must be there, never created.
		return &source{hostPath: &corev1.HostPathVolumeSource{Path: pv.Spec.Local.Path, Type: ptr.To(corev1.HostPathDirectory)}}, nil
	case pv.Spec.CSI == nil:
		return nil, fmt.Errorf("PersistentVolume %s: %w (kubelet-lite mounts CSI, local and hostPath persistent volumes)", pv.Name, ErrNotCSI)
	}
	c := pv.Spec.CSI
	src := &source{driver: c.Driver, handle: c.VolumeHandle, readOnly: c.ReadOnly, fsType: c.FSType,
		mountOptions: pv.Spec.MountOptions, attrs: maps.Clone(c.VolumeAttributes),
		stageSecret: c.NodeStageSecretRef, publishSecret: c.NodePublishSecretRef, accessMode: corev1.ReadWriteOnce}
	if len(pv.Spec.AccessModes) > 0 {
		src.accessMode = pv.Spec.AccessModes[0]
	}
	return src, nil
}

// applyDriverObject applies the driver's CSIDriver object, or upstream's
// defaults when it has none: attach required, no pod info, fsGroup
// applied to ReadWriteOnce volumes with a file system type, persistent
// volumes only.
func (m *Manager) applyDriverObject(ctx context.Context, pod *corev1.Pod, src *source) error {
	obj, err := m.api.CSIDriver(ctx, src.driver)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("read CSIDriver %s: %w", src.driver, err)
	}
	spec := storagev1.CSIDriverSpec{}
	if err == nil {
		spec = obj.Spec
	}
	src.attach = spec.AttachRequired == nil || *spec.AttachRequired
	src.policy = storagev1.ReadWriteOnceWithFSTypeFSGroupPolicy
	if spec.FSGroupPolicy != nil {
		src.policy = *spec.FSGroupPolicy
	}
	modes := spec.VolumeLifecycleModes
	if len(modes) == 0 {
		modes = []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent}
	}
	want := storagev1.VolumeLifecyclePersistent
	if src.inline {
		want = storagev1.VolumeLifecycleEphemeral
	}
	found := false
	for _, md := range modes {
		found = found || md == want
	}
	if !found {
		return fmt.Errorf("CSI driver %s does not serve %s volumes (its CSIDriver's volumeLifecycleModes are %v)", src.driver, want, modes)
	}
	if spec.PodInfoOnMount != nil && *spec.PodInfoOnMount {
		if src.attrs == nil {
			src.attrs = map[string]string{}
		}
		src.attrs["csi.storage.k8s.io/pod.name"] = pod.Name
		src.attrs["csi.storage.k8s.io/pod.namespace"] = pod.Namespace
		src.attrs["csi.storage.k8s.io/pod.uid"] = string(pod.UID)
		src.attrs["csi.storage.k8s.io/serviceAccount.name"] = pod.Spec.ServiceAccountName
		src.attrs["csi.storage.k8s.io/ephemeral"] = strconv.FormatBool(src.inline)
	}
	return nil
}

// capability is the volume capability NodeStageVolume and
// NodePublishVolume are asked for.
func (src *source) capability(d *driver, mountGroup string) *csipb.VolumeCapability {
	mode := csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER
	switch src.accessMode {
	case corev1.ReadWriteOncePod:
		if d.singleWriter {
			mode = csipb.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER
		}
	case corev1.ReadWriteOnce:
		if d.singleWriter {
			mode = csipb.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER
		}
	case corev1.ReadOnlyMany:
		mode = csipb.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY
	case corev1.ReadWriteMany:
		mode = csipb.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER
	}
	return &csipb.VolumeCapability{
		AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{
			FsType: src.fsType, MountFlags: src.mountOptions, VolumeMountGroup: mountGroup}},
		AccessMode: &csipb.VolumeCapability_AccessMode{Mode: mode},
	}
}

// secrets reads a secret a stage or publish call carries.
func (m *Manager) secrets(ctx context.Context, ref *corev1.SecretReference) (map[string]string, error) {
	if ref == nil || ref.Name == "" {
		return nil, nil
	}
	s, err := m.api.Secret(ctx, ref.Namespace, ref.Name)
	if err != nil {
		return nil, fmt.Errorf("read secret %s/%s for the CSI driver: %w", ref.Namespace, ref.Name, err)
	}
	out := make(map[string]string, len(s.Data))
	for k, v := range s.Data {
		out[k] = string(v)
	}
	return out, nil
}
