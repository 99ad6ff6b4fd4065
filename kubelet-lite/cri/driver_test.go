package cri_test

import (
	"context"
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
