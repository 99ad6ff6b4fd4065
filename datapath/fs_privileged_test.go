package datapath

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestEnsureBPFFSMountsTheStandardPlaceFirst: on a machine where nothing
// mounted /sys/fs/bpf, the directory is one nothing can be created in
// (sysfs; a read-only tmpfs here): the agent mounts bpffs there first,
// then makes its own directory.
func TestEnsureBPFFSMountsTheStandardPlaceFirst(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts")
	}
	standard := filepath.Join(t.TempDir(), "bpf")
	if err := os.Mkdir(standard, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", standard, "tmpfs", unix.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = unix.Unmount(standard, unix.MNT_DETACH) // the bpffs
		_ = unix.Unmount(standard, unix.MNT_DETACH) // the tmpfs beneath
	})
	dir := filepath.Join(standard, "hivelet", "node1")
	if err := ensureBPFFS(dir, standard); err != nil {
		t.Fatal(err)
	}
	if ok, err := isFS(dir, unix.BPF_FS_MAGIC); err != nil || !ok {
		t.Errorf("%s on bpffs: %v %v", dir, ok, err)
	}
	// Again: nothing more is mounted.
	if err := ensureBPFFS(dir, standard); err != nil {
		t.Fatal(err)
	}
	if err := unix.Unmount(standard, 0); err != nil {
		t.Fatal(err)
	}
	if ok, _ := isFS(standard, unix.BPF_FS_MAGIC); ok {
		t.Error("a second bpffs was mounted over the first")
	}
}
