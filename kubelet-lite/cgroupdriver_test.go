package kubeletlite

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

func TestCgroupDriver(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	says := func(d string, err error) func(context.Context) (string, error) {
		return func(context.Context) (string, error) { return d, err }
	}
	withSystemd := t.TempDir()
	for _, tc := range []struct {
		name, configured, root, runtime string
		runtimeErr                      error
		systemd                         bool
		want, wantErr                   string
	}{
		{name: "default", want: "cgroupfs"},
		{name: "runtime silent: the configured one", configured: "systemd", systemd: true, want: "systemd"},
		{name: "runtime wins", configured: "systemd", runtime: "cgroupfs", want: "cgroupfs"},
		{name: "runtime says systemd", runtime: "systemd", systemd: true, want: "systemd"},
		{name: "runtime unreachable", configured: "cgroupfs", runtimeErr: errors.New("down"), want: "cgroupfs"},
		{name: "systemd without systemd", configured: "systemd", wantErr: "systemd is not this host's init"},
		{name: "systemd with a cgroup root", configured: "systemd", root: "/r", systemd: true, wantErr: "--cgroup-root /r"},
		{name: "unknown", configured: "cgroupv3", wantErr: `"cgroupv3": cgroupfs or systemd`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			systemdRunDir = filepath.Join(t.TempDir(), "absent")
			if tc.systemd {
				systemdRunDir = withSystemd
			}
			got, err := cgroupDriver(context.Background(), tc.configured, tc.root, says(tc.runtime, tc.runtimeErr), quiet)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("driver %q (%v), want %q", got, err, tc.want)
			}
		})
	}
}
