package csitest

import (
	"os"
	"path/filepath"
	"testing"

	csimock "github.com/kubernetes-csi/csi-test/v5/driver"
	"go.uber.org/mock/gomock"
)

// StartMock serves csi-test's mock CSI driver on a unix socket in a short
// temporary directory (socket paths are limited to 108 bytes) until the
// test ends, and returns its node service, for the test's expectations,
// and the socket's path.
func StartMock(t testing.TB) (*csimock.MockNodeServer, string) {
	t.Helper()
	ctrl := gomock.NewController(t)
	node := csimock.NewMockNodeServer(ctrl)
	d := csimock.NewMockCSIDriver(&csimock.MockCSIDriverServers{Node: node,
		Identity: csimock.NewMockIdentityServer(ctrl), Controller: csimock.NewMockControllerServer(ctrl)})
	dir, err := os.MkdirTemp("", "csi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	endpoint := filepath.Join(dir, "csi.sock")
	if err := d.StartOnAddress("unix", endpoint); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	return node, endpoint
}
