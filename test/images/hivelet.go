package images

import "path/filepath"

// HiveletRef is the name `make image` gives hivelet's image, and the one
// deploy/ runs.
const HiveletRef = "ghcr.io/hivelet/hivelet:dev"

// Hivelet builds hivelet's own image from the static binaries in binDir
// (hivelet, hivelet-cni, hivelet-kubelet): one layer with the three in
// /usr/bin and nothing else, as nothing else is needed at runtime. Its
// entrypoint is hivelet; the DaemonSet's arguments pick the command.
// Byte-identical binaries give a byte-identical image (fixed times,
// sorted entries, no gzip timestamp), so its digest is reproducible.
func Hivelet(binDir string) (*Image, error) {
	files := map[string]string{}
	for _, b := range []string{"hivelet", "hivelet-cni", "hivelet-kubelet"} {
		files["/usr/bin/"+b] = filepath.Join(binDir, b)
	}
	return Build(Spec{Scratch: true, Files: files, Entrypoint: []string{"/usr/bin/hivelet"}})
}
