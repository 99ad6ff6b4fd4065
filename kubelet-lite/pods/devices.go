package pods

import (
	"context"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hivelet/hivelet/kubelet-lite/deviceplugin"
)

// Devices is the device plugin manager as the pod manager uses it.
type Devices interface {
	// Allocate gives a container the devices its limits ask for; nil
	// when it asks for none.
	Allocate(ctx context.Context, pod *corev1.Pod, c *corev1.Container) (*deviceplugin.Allocation, error)
	// Resources are the plugins' extended resources.
	Resources() (capacity, allocatable corev1.ResourceList)
	// Retain frees the devices of pods that keep says are gone.
	Retain(keep func(types.UID) bool)
}

// addDevices puts what the device plugins answered for c into its CRI
// config: device nodes, mounts, environment, annotations, CDI devices.
func (m *Manager) addDevices(ctx context.Context, pod *corev1.Pod, c *corev1.Container, cfg *runtimeapi.ContainerConfig) error {
	if m.cfg.Devices == nil {
		return nil
	}
	a, err := m.cfg.Devices.Allocate(ctx, pod, c)
	if err != nil || a == nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(a.Envs)) {
		cfg.Envs = append(cfg.Envs, &runtimeapi.KeyValue{Key: k, Value: []byte(a.Envs[k])})
	}
	for _, mnt := range a.Mounts {
		cfg.Mounts = append(cfg.Mounts, &runtimeapi.Mount{ContainerPath: mnt.ContainerPath, HostPath: mnt.HostPath, Readonly: mnt.ReadOnly})
	}
	for _, d := range a.Devices {
		cfg.Devices = append(cfg.Devices, &runtimeapi.Device{ContainerPath: d.ContainerPath, HostPath: d.HostPath, Permissions: d.Permissions})
	}
	for _, d := range a.CdiDevices {
		cfg.CDIDevices = append(cfg.CDIDevices, &runtimeapi.CDIDevice{Name: d.Name})
	}
	for k, v := range a.Annotations {
		if _, taken := cfg.Annotations[k]; !taken { // the kubelet's own stay
			cfg.Annotations[k] = v
		}
	}
	return nil
}

// allocatable is the node's allocatable with the device plugins'
// resources.
func (m *Manager) allocatable() corev1.ResourceList {
	if m.cfg.Devices == nil || m.cfg.Allocatable == nil {
		return m.cfg.Allocatable
	}
	out := m.cfg.Allocatable.DeepCopy()
	_, dev := m.cfg.Devices.Resources()
	maps.Copy(out, dev)
	return out
}
