package kubeletlite

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/hivelet/hivelet/kubelet-lite/pods"
)

// systemdRunDir exists when systemd is the host's init, the check
// systemd's own tools make.
var systemdRunDir = "/run/systemd/system"

// cgroupDriver settles how pod cgroups are named. The runtime's answer
// wins when it gives one, as with the upstream kubelet (which follows the
// runtime since KubeletCgroupDriverFromCRI): a kubelet and runtime that
// disagree put pods where nobody manages them. Otherwise the configured
// driver, cgroupfs by default. systemd needs systemd running, and pods
// under its kubepods.slice, so no --cgroup-root.
func cgroupDriver(ctx context.Context, configured, root string, runtimeDriver func(context.Context) (string, error), log *slog.Logger) (string, error) {
	driver := configured
	if driver == "" {
		driver = pods.DriverCgroupfs
	}
	if driver != pods.DriverCgroupfs && driver != pods.DriverSystemd {
		return "", fmt.Errorf("--cgroup-driver %q: cgroupfs or systemd", driver)
	}
	rt, err := runtimeDriver(ctx)
	switch {
	case err != nil:
		log.Warn("The runtime did not say which cgroup driver it uses; keeping the configured one", "cgroupDriver", driver, "error", err)
	case rt != "" && rt != driver:
		log.Info("Using the runtime's cgroup driver, not the configured one", "runtime", rt, "configured", driver)
		driver = rt
	}
	if driver == pods.DriverSystemd {
		if _, err := os.Stat(systemdRunDir); err != nil {
			return "", fmt.Errorf("cgroup driver systemd: systemd is not this host's init (no %s): use cgroupDriver cgroupfs here, with SystemdCgroup = false in containerd's runc options", systemdRunDir)
		}
		if root != "" && root != "/" {
			return "", fmt.Errorf("cgroup driver systemd: pods go under kubepods.slice; --cgroup-root %s is for cgroupfs only", root)
		}
	}
	return driver, nil
}
