package pods

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/hivelet/hivelet/kubelet-lite/cri"
)

// TestSweepCgroups lays out pod cgroups as each driver names them, in a
// v1 controller hierarchy and the unified one, and sweeps: the cgroups of
// pods nobody knows go (children first), the kept pod's and anything not
// named like a pod cgroup stay. Under systemd the slice units are
// stopped first.
func TestSweepCgroups(t *testing.T) {
	for _, tc := range []struct {
		driver, root string
		keep, gone   []string // directories relative to a hierarchy
		stopped      []string
	}{
		{DriverCgroupfs, "/r",
			[]string{"r/kubepods/podkept-1", "r/kubepods/burstable/notapod", "r/other/podx"},
			[]string{"r/kubepods/podgone-1", "r/kubepods/besteffort/podgone-2/c1"}, nil},
		{DriverSystemd, "/",
			[]string{"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podkept_1.slice", "kubepods.slice/kubepods-besteffort.slice/other.scope"},
			[]string{"kubepods.slice/kubepods-podgone_1.slice/cri-containerd-x.scope", "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podgone_2.slice"},
			[]string{"kubepods-besteffort-podgone_2.slice", "kubepods-podgone_1.slice"}},
	} {
		t.Run(tc.driver, func(t *testing.T) {
			mounts := t.TempDir()
			log := filepath.Join(t.TempDir(), "stopped")
			stub := filepath.Join(t.TempDir(), "systemctl")
			if err := os.WriteFile(stub, []byte("#!/bin/sh\necho \"$2\" >> "+log+"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			oldMounts, oldCtl := cgroupMounts, systemctl
			cgroupMounts, systemctl = mounts, stub
			t.Cleanup(func() { cgroupMounts, systemctl = oldMounts, oldCtl })
			for _, h := range []string{"", "memory"} {
				for _, d := range append(slices.Clone(tc.keep), tc.gone...) {
					if err := os.MkdirAll(filepath.Join(mounts, h, d), 0o755); err != nil {
						t.Fatal(err)
					}
				}
			}
			m := NewManager(Config{NodeName: "n", RootDir: t.TempDir(), CgroupRoot: tc.root, CgroupDriver: tc.driver}, &cri.Client{}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
			m.sweepCgroups(func(uid types.UID) bool { return uid == "kept-1" })
			for _, h := range []string{"", "memory"} {
				for _, d := range tc.keep {
					if _, err := os.Stat(filepath.Join(mounts, h, d)); err != nil {
						t.Errorf("%s removed: %v", filepath.Join(h, d), err)
					}
				}
				for _, d := range tc.gone {
					if _, err := os.Stat(filepath.Join(mounts, h, d)); !os.IsNotExist(err) {
						t.Errorf("%s kept", filepath.Join(h, d))
					}
				}
			}
			raw, _ := os.ReadFile(log)
			stopped := slices.Compact(slices.Sorted(slices.Values(strings.Fields(string(raw)))))
			if !slices.Equal(stopped, tc.stopped) {
				t.Errorf("slices stopped %v, want %v", stopped, tc.stopped)
			}
		})
	}
}

// TestRemovePodCgroupsSystemd: a finished pod's slice is stopped and its
// directory removed in every hierarchy.
func TestRemovePodCgroupsSystemd(t *testing.T) {
	mounts := t.TempDir()
	oldMounts, oldCtl := cgroupMounts, systemctl
	cgroupMounts, systemctl = mounts, "true"
	t.Cleanup(func() { cgroupMounts, systemctl = oldMounts, oldCtl })
	pod := &corev1.Pod{}
	pod.UID = "a-b"
	rel := "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-poda_b.slice"
	for _, h := range []string{"", "cpu"} {
		if err := os.MkdirAll(filepath.Join(mounts, h, rel, "x.scope"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	m := NewManager(Config{NodeName: "n", RootDir: t.TempDir(), CgroupDriver: DriverSystemd}, &cri.Client{}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.removePodCgroups(pod)
	for _, h := range []string{"", "cpu"} {
		if _, err := os.Stat(filepath.Join(mounts, h, rel)); !os.IsNotExist(err) {
			t.Errorf("%s kept", filepath.Join(h, rel))
		}
	}
}
