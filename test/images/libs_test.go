package images

import (
	"slices"
	"strings"
	"testing"
)

func TestSharedLibs(t *testing.T) {
	libs, err := sharedLibs("/usr/bin/curl")
	if err != nil {
		t.Skip("no dynamically linked curl here:", err)
	}
	hasLoader := slices.ContainsFunc(libs, func(l string) bool { return strings.Contains(l, "ld-linux") })
	hasLibc := slices.ContainsFunc(libs, func(l string) bool { return strings.Contains(l, "libc.so") })
	if !hasLoader || !hasLibc {
		t.Errorf("curl's libraries %v lack the loader or libc", libs)
	}
	if libs, err := sharedLibs(BusyboxBin); err != nil || len(libs) != 0 {
		t.Errorf("static busybox: %v %v, want none", libs, err)
	}
}
