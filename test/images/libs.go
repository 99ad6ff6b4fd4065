package images

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// sharedLibs lists the shared libraries bin loads on this machine (ldd),
// the dynamic loader included: what a dynamically linked binary of this
// machine needs beside it in an image. A static binary has none.
func sharedLibs(bin string) ([]string, error) {
	out, err := exec.Command("ldd", bin).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "not a dynamic executable") {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %w: %s", bin, err, out)
	}
	var libs []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[1] == "=>" && filepath.IsAbs(f[2]):
			libs = append(libs, f[2])
		case len(f) >= 1 && filepath.IsAbs(f[0]):
			libs = append(libs, f[0]) // the loader: /lib64/ld-linux-x86-64.so.2
		case len(f) >= 3 && f[1] == "=>" && f[2] == "not":
			return nil, fmt.Errorf("ldd %s: %s is not found", bin, f[0])
		}
	}
	return libs, nil
}

// addBinaries adds each binary (path in the image -> file here) and the
// libraries it loads, at their paths here, to files.
func addBinaries(files, bins map[string]string) error {
	for dst, src := range bins {
		files[dst] = src
		libs, err := sharedLibs(src)
		if err != nil {
			return err
		}
		for _, l := range libs {
			files[l] = l
		}
	}
	return nil
}
