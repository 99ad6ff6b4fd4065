package csi

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// The upstream kubelet's names, kept so tools and operators find
// volumes where they expect them.
const (
	// pluginDir holds a pod's CSI volumes under pods/<uid>/volumes.
	pluginDir = "kubernetes.io~csi"
	// dataFile records a mounted volume beside its mount point.
	dataFile = "vol_data.json"
	// nodeIDAnnotation maps each registered driver to its node ID on
	// the Node.
	nodeIDAnnotation = "csi.volume.kubernetes.io/nodeid"
	// registryDir is where node plugins put their registration sockets.
	registryDir = "plugins_registry"
)

// checkDriverName refuses a driver name that is not a DNS subdomain of
// at most 63 characters (the CSIDriver object's rule): it becomes a path
// component and a map key on the Node.
func checkDriverName(name string) error {
	if len(name) > 63 {
		return fmt.Errorf("driver name %q: longer than 63 characters", name)
	}
	if errs := validation.IsDNS1123Subdomain(strings.ToLower(name)); len(errs) > 0 || strings.Contains(name, "..") {
		return fmt.Errorf("driver name %q: not a DNS subdomain: %s", name, strings.Join(errs, "; "))
	}
	return nil
}

func hashOf(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "")))
	return hex.EncodeToString(sum[:])
}

// attachmentName is the VolumeAttachment the attach/detach controller
// creates for a volume on a node.
func attachmentName(handle, driver, node string) string {
	return "csi-" + hashOf(handle, driver, node)
}

// inlineHandle is the volume ID of a CSI inline volume: unique per pod
// and volume, as upstream makes it.
func inlineHandle(podUID, volume string) string {
	return "csi-" + hashOf(podUID, volume)
}

// stagingDir is where a volume is staged for every pod on the node that
// uses it (NodeStageVolume's staging_target_path).
func (m *Manager) stagingDir(driver, handle string) string {
	return filepath.Join(m.root, "plugins", "kubernetes.io", "csi", driver, hashOf(handle), "globalmount")
}

// volumeDir holds a pod's CSI volume: its mount point and record.
func (m *Manager) volumeDir(uid, volume string) string {
	return filepath.Join(m.root, "pods", uid, "volumes", pluginDir, volume)
}
