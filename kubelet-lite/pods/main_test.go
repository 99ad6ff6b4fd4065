package pods

import (
	"os"
	"testing"
)

// TestMain points the cgroup code at a scratch directory: unit tests
// run as root must never create or limit cgroups of the machine.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pods-cgroups-")
	if err != nil {
		panic(err)
	}
	cgroupMounts = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
