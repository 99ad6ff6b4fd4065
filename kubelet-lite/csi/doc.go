// Package csi is kubelet-lite's node side of the Container Storage
// Interface: it finds CSI node plugins through the plugin watcher's
// registration sockets (<root-dir>/plugins_registry), records each on the
// node's CSINode object, and mounts pods' CSI volumes
// (PersistentVolumeClaims bound to CSI PersistentVolumes, generic
// ephemeral volumes, and CSI inline volumes) with NodeStageVolume and
// NodePublishVolume before their containers start, tearing them down with
// NodeUnpublishVolume and NodeUnstageVolume once the containers are gone.
// Claims bound to hostPath and local PersistentVolumes resolve here too:
// they are the node's own directories, with no driver.
//
// What it mounted is recorded on disk beside each mount (vol_data.json,
// as the upstream kubelet records it), so a restarted kubelet adopts the
// volumes of running pods and tears down those of pods deleted meanwhile.
//
// Everything a plugin or a pod spec names is checked before it becomes a
// path: driver names are DNS subdomains, volume names DNS labels, and the
// paths the kubelet builds from them are its own.
package csi
