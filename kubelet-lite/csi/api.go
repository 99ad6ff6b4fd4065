package csi

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/hivelet/hivelet/kubelet-lite/kubeapi"
)

// API is what the CSI side of the kubelet reads and writes in the API
// server: the objects a volume is mounted from, and the node's records
// of its drivers.
type API interface {
	PersistentVolumeClaim(ctx context.Context, ns, name string) (*corev1.PersistentVolumeClaim, error)
	PersistentVolume(ctx context.Context, name string) (*corev1.PersistentVolume, error)
	// CSIDriver fails with a NotFound error when the driver has no
	// CSIDriver object (upstream's defaults then apply).
	CSIDriver(ctx context.Context, name string) (*storagev1.CSIDriver, error)
	VolumeAttachment(ctx context.Context, name string) (*storagev1.VolumeAttachment, error)
	Secret(ctx context.Context, ns, name string) (*corev1.Secret, error)
	// UpdateNode applies change to the Node and writes it when change
	// says it changed, retrying on conflicts.
	UpdateNode(ctx context.Context, name string, change func(*corev1.Node) bool) error
	// UpdateCSINode does the same for the node's CSINode, creating it,
	// owned by the Node, when there is none.
	UpdateCSINode(ctx context.Context, name string, change func(*storagev1.CSINode) bool) error
}

// NewAPI is the API through kubelet-lite's client.
func NewAPI(c *kubeapi.Client) API { return kubeAPI{c} }

type kubeAPI struct{ c *kubeapi.Client }

func (k kubeAPI) PersistentVolumeClaim(ctx context.Context, ns, name string) (*corev1.PersistentVolumeClaim, error) {
	return k.c.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
}

func (k kubeAPI) PersistentVolume(ctx context.Context, name string) (*corev1.PersistentVolume, error) {
	return k.c.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{})
}

func (k kubeAPI) CSIDriver(ctx context.Context, name string) (*storagev1.CSIDriver, error) {
	return k.c.StorageV1().CSIDrivers().Get(ctx, name, metav1.GetOptions{})
}

func (k kubeAPI) VolumeAttachment(ctx context.Context, name string) (*storagev1.VolumeAttachment, error) {
	return k.c.StorageV1().VolumeAttachments().Get(ctx, name, metav1.GetOptions{})
}

func (k kubeAPI) Secret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	return k.c.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
}

func (k kubeAPI) UpdateNode(ctx context.Context, name string, change func(*corev1.Node) bool) error {
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		n, err := k.c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil || !change(n) {
			return err
		}
		_, err = k.c.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		return err
	})
}

func (k kubeAPI) UpdateCSINode(ctx context.Context, name string, change func(*storagev1.CSINode) bool) error {
	res := k.c.StorageV1().CSINodes()
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		cur, err := res.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			// Owned by the Node, so it goes when the Node does.
			n, err := k.c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			fresh := &storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: name, OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Node", Name: name, UID: n.UID}}}}
			change(fresh)
			_, err = res.Create(ctx, fresh, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return apierrors.NewConflict(storagev1.Resource("csinodes"), name, err)
			}
			return err
		}
		if err != nil || !change(cur) {
			return err
		}
		_, err = res.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}
