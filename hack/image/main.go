// Command image writes a container image as an OCI layout archive that
// `ctr images import` (and any OCI tool) takes, without a container
// engine or registry: hivelet's own (`make image`), or with --busybox one
// of the machine's static busybox, for the demo's pods.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/hivelet/hivelet/test/images"
)

func main() {
	bin := flag.String("bin", "bin", "directory holding the static hivelet, hivelet-cni and hivelet-kubelet")
	out := flag.String("out", "bin/hivelet-image.tar", "the OCI layout archive to write")
	ref := flag.String("ref", images.HiveletRef, "the image's name")
	busybox := flag.String("busybox", "", "write a busybox image instead, whose command is this (space-separated: \"sleep 2147483647\")")
	flag.Parse()
	var (
		img *images.Image
		err error
	)
	if *busybox != "" {
		img, err = images.Busybox(strings.Fields(*busybox))
	} else {
		img, err = images.Hivelet(*bin)
	}
	if err == nil {
		err = img.WriteLayout(*out, *ref)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	fmt.Printf("%s %s@%s\n", *out, *ref, img.ManifestDigest)
}
