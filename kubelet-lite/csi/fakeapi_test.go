package csi

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// fakeAPI holds the objects a test sets up, by namespace/name.
type fakeAPI struct {
	mu      sync.Mutex
	claims  map[string]*corev1.PersistentVolumeClaim
	pvs     map[string]*corev1.PersistentVolume
	drivers map[string]*storagev1.CSIDriver
	vas     map[string]*storagev1.VolumeAttachment
	secrets map[string]*corev1.Secret
	node    *corev1.Node
	csiNode *storagev1.CSINode
}

func newFakeAPI(node string) *fakeAPI {
	return &fakeAPI{claims: map[string]*corev1.PersistentVolumeClaim{}, pvs: map[string]*corev1.PersistentVolume{},
		drivers: map[string]*storagev1.CSIDriver{}, vas: map[string]*storagev1.VolumeAttachment{}, secrets: map[string]*corev1.Secret{},
		node: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, UID: "node-uid", Labels: map[string]string{"kubernetes.io/hostname": node}}}}
}

func get[T any](f *fakeAPI, m map[string]*T, key, resource string) (*T, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if o, ok := m[key]; ok {
		return o, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: resource}, key)
}

func (f *fakeAPI) PersistentVolumeClaim(_ context.Context, ns, name string) (*corev1.PersistentVolumeClaim, error) {
	return get(f, f.claims, ns+"/"+name, "persistentvolumeclaims")
}

func (f *fakeAPI) PersistentVolume(_ context.Context, name string) (*corev1.PersistentVolume, error) {
	return get(f, f.pvs, name, "persistentvolumes")
}

func (f *fakeAPI) CSIDriver(_ context.Context, name string) (*storagev1.CSIDriver, error) {
	return get(f, f.drivers, name, "csidrivers")
}

func (f *fakeAPI) VolumeAttachment(_ context.Context, name string) (*storagev1.VolumeAttachment, error) {
	return get(f, f.vas, name, "volumeattachments")
}

func (f *fakeAPI) Secret(_ context.Context, ns, name string) (*corev1.Secret, error) {
	return get(f, f.secrets, ns+"/"+name, "secrets")
}

func (f *fakeAPI) UpdateNode(_ context.Context, _ string, change func(*corev1.Node) bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.node.DeepCopy()
	if change(n) {
		f.node = n
	}
	return nil
}

func (f *fakeAPI) UpdateCSINode(_ context.Context, name string, change func(*storagev1.CSINode) bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.csiNode.DeepCopy()
	if c == nil {
		c = &storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: name}}
		change(c)
		f.csiNode = c
		return nil
	}
	if change(c) {
		f.csiNode = c
	}
	return nil
}

func (f *fakeAPI) snapshot() (*corev1.Node, *storagev1.CSINode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.node.DeepCopy(), f.csiNode.DeepCopy()
}
