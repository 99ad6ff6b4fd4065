package cri_test

import (
	"context"
	"slices"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hivelet/hivelet/kubelet-lite/cri/critest"
)

// TestCgroupDriver: the runtime's answer, and none when it gives no Linux
// configuration (whose enum's zero value is SYSTEMD, not "unknown").
func TestCgroupDriver(t *testing.T) {
	for _, tc := range []struct {
		linux *runtimeapi.LinuxRuntimeConfiguration
		want  string
	}{
		{nil, ""},
		{&runtimeapi.LinuxRuntimeConfiguration{CgroupDriver: runtimeapi.CgroupDriver_CGROUPFS}, "cgroupfs"},
		{&runtimeapi.LinuxRuntimeConfiguration{CgroupDriver: runtimeapi.CgroupDriver_SYSTEMD}, "systemd"},
	} {
		rt, client := critest.New()
		rt.RT.FakeLinuxConfiguration = tc.linux
		got, err := client.CgroupDriver(context.Background())
		if err != nil || got != tc.want {
			t.Errorf("%v: %q (%v), want %q", tc.linux, got, err, tc.want)
		}
	}
}

// TestNodeImages: largest first, digests then tags, five names at most,
// nameless images left out.
func TestNodeImages(t *testing.T) {
	rt, client := critest.New()
	rt.Images.Images = map[string]*runtimeapi.Image{
		"small": {Id: "small", RepoTags: []string{"busybox:1"}, RepoDigests: []string{"busybox@sha256:aa"}, Size: 10},
		"big":   {Id: "big", RepoTags: []string{"a:1", "a:2", "a:3", "a:4", "a:5", "a:6"}, Size: 1000},
		"none":  {Id: "none", Size: 5000},
	}
	got, err := client.NodeImages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].SizeBytes != 1000 || len(got[0].Names) != 5 ||
		!slices.Equal(got[1].Names, []string{"busybox@sha256:aa", "busybox:1"}) {
		t.Errorf("node images %+v", got)
	}
}
