// Command image writes hivelet's container image as an OCI layout
// archive that `ctr images import` (and any OCI tool) takes, without a
// container engine or registry: `make image`.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/hivelet/hivelet/test/images"
)

func main() {
	bin := flag.String("bin", "bin", "directory holding the static hivelet, hivelet-cni and hivelet-kubelet")
	out := flag.String("out", "bin/hivelet-image.tar", "the OCI layout archive to write")
	ref := flag.String("ref", images.HiveletRef, "the image's name")
	flag.Parse()
	img, err := images.Hivelet(*bin)
	if err == nil {
		err = img.WriteLayout(*out, *ref)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	fmt.Printf("%s %s@%s\n", *out, *ref, img.ManifestDigest)
}
