package node

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestFillNodeInfo(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	osReleaseFile = write("os-release", "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n")
	machineIDFile = write("machine-id", "abc123\n")
	bootIDFile = write("boot_id", "b-1\n")
	productUUID = filepath.Join(dir, "absent")
	k := &Keeper{cfg: Config{RuntimeVersion: func(context.Context) (string, error) { return "containerd://1.6.20", nil }}}
	info := corev1.NodeSystemInfo{SystemUUID: "kept"}
	k.fillNodeInfo(context.Background(), &info)
	if info.OSImage != "Debian GNU/Linux 12 (bookworm)" || info.MachineID != "abc123" || info.BootID != "b-1" ||
		info.SystemUUID != "kept" || info.ContainerRuntimeVersion != "containerd://1.6.20" || info.KernelVersion == "" {
		t.Errorf("node info %+v", info)
	}
}
