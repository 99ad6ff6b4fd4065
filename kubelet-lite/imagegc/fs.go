package imagegc

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hivelet/hivelet/kubelet-lite/cri"
)

// RuntimeFs reads the image file system's usage where the runtime keeps
// its images (ImageFsInfo's mount point), falling back to fallback (the
// kubelet's root dir) when the runtime names none.
func RuntimeFs(rt *cri.Client, fallback string) FsUsage {
	return func(ctx context.Context) (uint64, uint64, error) {
		ctx, cancel := cri.Ctx(ctx)
		defer cancel()
		path := fallback
		if fs, err := rt.Images.ImageFsInfo(ctx, &runtimeapi.ImageFsInfoRequest{}); err == nil {
			for _, f := range fs.GetImageFilesystems() {
				if mp := f.GetFsId().GetMountpoint(); mp != "" {
					path = mp
					break
				}
			}
		}
		if path == "" {
			return 0, 0, errors.New("no image file system")
		}
		var st unix.Statfs_t
		if err := unix.Statfs(path, &st); err != nil {
			return 0, 0, fmt.Errorf("statfs %s: %w", path, err)
		}
		return st.Blocks * uint64(st.Bsize), st.Bavail * uint64(st.Bsize), nil
	}
}
