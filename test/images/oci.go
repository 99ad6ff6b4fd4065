// Package images builds the container images the end-to-end tests run,
// with no registry and no image tools: a one-layer OCI image holding the
// machine's static busybox (every applet linked), written as an OCI
// layout archive that `ctr images import` takes, or served by
// test/registry for real pulls.
package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"slices"
	"strings"
	"time"
)

// BusyboxBin is the static busybox the image carries (Debian busybox-static).
const BusyboxBin = "/bin/busybox"

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int               `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    map[string]string `json:"platform,omitempty"`
}

// Image is a built image: its manifest and every blob it names.
type Image struct {
	Manifest       []byte
	ManifestDigest string
	Blobs          map[string][]byte // by digest, manifest included
}

// ManifestType is the media type of every manifest built here.
const ManifestType = "application/vnd.oci.image.manifest.v1+json"

// Busybox builds the busybox image; cmd is its default command.
func Busybox(cmd []string) (*Image, error) {
	return Build(Spec{Cmd: cmd})
}

// Spec is an image built on the busybox layer: files from this machine
// in a second layer (so every image shares the first), and its config.
type Spec struct {
	Entrypoint, Cmd []string
	Files           map[string]string // path in the image -> file here (mode kept)
	Env             []string          // beyond PATH
	User            string            // the image's USER, "" for root
	// Binaries are this machine's programs (path in the image -> file
	// here), carried with the shared libraries they load: real tools
	// (nc, dig, curl) where busybox's applets lack the options tests use.
	Binaries map[string]string
	// Scratch leaves the busybox layer out: the image holds Files only.
	Scratch bool
}

// Build builds the image spec describes.
func Build(spec Spec) (*Image, error) {
	var layers [][]byte
	var diffIDs []string
	if !spec.Scratch {
		layer, diffID, err := busyboxLayer()
		if err != nil {
			return nil, err
		}
		layers, diffIDs = append(layers, layer), append(diffIDs, diffID)
	}
	files := maps.Clone(spec.Files)
	if files == nil {
		files = map[string]string{}
	}
	if err := addBinaries(files, spec.Binaries); err != nil {
		return nil, err
	}
	if len(files) > 0 {
		layer, diffID, err := filesLayer(files)
		if err != nil {
			return nil, err
		}
		layers, diffIDs = append(layers, layer), append(diffIDs, diffID)
	}
	cfg := map[string]any{"Env": append([]string{"PATH=/bin:/usr/bin:/usr/local/bin"}, spec.Env...)}
	if len(spec.Cmd) > 0 {
		cfg["Cmd"] = spec.Cmd
	}
	if len(spec.Entrypoint) > 0 {
		cfg["Entrypoint"] = spec.Entrypoint
	}
	if spec.User != "" {
		cfg["User"] = spec.User
	}
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux", "config": cfg,
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err != nil {
		return nil, err
	}
	img := &Image{Blobs: map[string][]byte{}}
	add := func(b []byte, mediaType string) descriptor {
		d := digest(b)
		img.Blobs[d] = b
		return descriptor{MediaType: mediaType, Digest: d, Size: len(b)}
	}
	var descs []descriptor
	for _, l := range layers {
		descs = append(descs, add(l, "application/vnd.oci.image.layer.v1.tar+gzip"))
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     ManifestType,
		"config":        add(config, "application/vnd.oci.image.config.v1+json"),
		"layers":        descs,
	})
	if err != nil {
		return nil, err
	}
	img.Manifest, img.ManifestDigest = manifest, add(manifest, ManifestType).Digest
	return img, nil
}

// BuildBusybox writes an OCI layout archive of image ref (e.g.
// "hivelet.test/busybox:1") to path. cmd is the image's default command.
func BuildBusybox(path, ref string, cmd []string) error {
	img, err := Busybox(cmd)
	if err != nil {
		return err
	}
	return img.WriteLayout(path, ref)
}

// WriteLayout writes the image as an OCI layout archive naming it ref.
func (img *Image) WriteLayout(path, ref string) error {
	md := descriptor{MediaType: ManifestType, Digest: img.ManifestDigest, Size: len(img.Manifest),
		Platform:    map[string]string{"architecture": "amd64", "os": "linux"},
		Annotations: map[string]string{"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": ref[strings.LastIndex(ref, ":")+1:]}}
	index, err := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []descriptor{md}})
	if err != nil {
		return err
	}
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	files := map[string][]byte{"oci-layout": []byte(`{"imageLayoutVersion":"1.0.0"}`), "index.json": index}
	for d, b := range img.Blobs {
		files["blobs/sha256/"+strings.TrimPrefix(d, "sha256:")] = b
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if err := writeFile(tw, name, files[name], 0o644); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, out.Bytes(), 0o644)
}

// busyboxLayer is a gzipped tar of /bin/busybox and a link per applet;
// it returns the layer and the digest of its uncompressed tar.
func busyboxLayer() ([]byte, string, error) {
	bin, err := os.ReadFile(BusyboxBin)
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w (install busybox-static)", BusyboxBin, err)
	}
	list, err := exec.Command(BusyboxBin, "--list").Output()
	if err != nil {
		return nil, "", fmt.Errorf("busybox --list: %w", err)
	}
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, dir := range []string{"bin/", "etc/", "tmp/", "proc/", "sys/", "dev/", "var/", "www/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: epoch}); err != nil {
			return nil, "", err
		}
	}
	if err := writeFile(tw, "bin/busybox", bin, 0o755); err != nil {
		return nil, "", err
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" {
			continue
		}
		h := &tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777, ModTime: epoch}
		if err := tw.WriteHeader(h); err != nil {
			return nil, "", err
		}
	}
	for _, f := range [][2]string{
		{"etc/passwd", "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"},
		{"etc/group", "root:x:0:\nnogroup:x:65534:\n"},
	} {
		if err := writeFile(tw, f[0], []byte(f[1]), 0o644); err != nil {
			return nil, "", err
		}
	}
	return finishLayer(tw, &raw)
}

// filesLayer is a gzipped tar of files (path in the image -> file here)
// with the directories they need.
func filesLayer(files map[string]string) ([]byte, string, error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	dirs := map[string]bool{}
	for _, dst := range slices.Sorted(maps.Keys(files)) {
		name := strings.TrimPrefix(path.Clean("/"+dst), "/")
		for d := path.Dir(name); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch}); err != nil {
			return nil, "", err
		}
	}
	for _, dst := range slices.Sorted(maps.Keys(files)) {
		b, err := os.ReadFile(files[dst])
		if err != nil {
			return nil, "", fmt.Errorf("image file %s: %w", dst, err)
		}
		st, err := os.Stat(files[dst])
		if err != nil {
			return nil, "", err
		}
		mode := int64(st.Mode().Perm())
		if st.Mode()&fs.ModeSetuid != 0 {
			mode |= 0o4000 // the setuid bit in tar's (and chmod's) numbering
		}
		if err := writeFile(tw, strings.TrimPrefix(path.Clean("/"+dst), "/"), b, mode); err != nil {
			return nil, "", err
		}
	}
	return finishLayer(tw, &raw)
}

// finishLayer closes tw over raw and returns the gzipped layer and the
// digest of the uncompressed tar (its diff ID).
func finishLayer(tw *tar.Writer, raw *bytes.Buffer) ([]byte, string, error) {
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return gz.Bytes(), digest(raw.Bytes()), nil
}

// epoch keeps archives byte-identical across builds.
var epoch = time.Unix(0, 0)

func writeFile(tw *tar.Writer, name string, b []byte, mode int64) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(b)), ModTime: epoch}); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
