package node

import (
	"bufio"
	"context"
	"os"
	"strings"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
)

// Where the machine's identity is read, as the upstream kubelet reads it
// (through cAdvisor).
var (
	osReleaseFile = "/etc/os-release"
	machineIDFile = "/etc/machine-id"
	bootIDFile    = "/proc/sys/kernel/random/boot_id"
	productUUID   = "/sys/class/dmi/id/product_uuid"
)

// fillNodeInfo sets what `kubectl get nodes -o wide` and the e2e suite
// read: OS image, kernel, runtime ("containerd://1.6.20"), machine, boot
// and system ids. What cannot be read stays as it was.
func (k *Keeper) fillNodeInfo(ctx context.Context, info *corev1.NodeSystemInfo) {
	if v := osImage(); v != "" {
		info.OSImage = v
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		info.KernelVersion = unix.ByteSliceToString(u.Release[:])
	}
	info.MachineID = firstLine(machineIDFile, info.MachineID)
	info.BootID = firstLine(bootIDFile, info.BootID)
	info.SystemUUID = firstLine(productUUID, info.SystemUUID)
	if k.cfg.RuntimeVersion != nil {
		if v, err := k.cfg.RuntimeVersion(ctx); err == nil && v != "" {
			info.ContainerRuntimeVersion = v
		}
	}
	if info.ContainerRuntimeVersion == "" {
		info.ContainerRuntimeVersion = "cri"
	}
}

// osImage is PRETTY_NAME of os-release ("Debian GNU/Linux 12 (bookworm)").
func osImage() string {
	f, err := os.Open(osReleaseFile)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}

func firstLine(path, def string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return def
	}
	if v := strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]); v != "" {
		return v
	}
	return def
}
