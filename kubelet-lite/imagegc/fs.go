package imagegc

import (
	"context"
	"errors"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hivelet/hivelet/kubelet-lite/cri"
	"github.com/hivelet/hivelet/kubelet-lite/eviction"
)

// Path is where the runtime keeps its images (ImageFsInfo's mount
// point), or fallback (the kubelet's root dir) when it names none.
func Path(ctx context.Context, rt *cri.Client, fallback string) string {
	ctx, cancel := cri.Ctx(ctx)
	defer cancel()
	if fs, err := rt.Images.ImageFsInfo(ctx, &runtimeapi.ImageFsInfoRequest{}); err == nil {
		for _, f := range fs.GetImageFilesystems() {
			if mp := f.GetFsId().GetMountpoint(); mp != "" {
				return mp
			}
		}
	}
	return fallback
}

// RuntimeFs reads the image file system's size and free space.
func RuntimeFs(rt *cri.Client, fallback string) FsUsage {
	return func(ctx context.Context) (uint64, uint64, error) {
		path := Path(ctx, rt, fallback)
		if path == "" {
			return 0, 0, errors.New("no image file system")
		}
		fs, err := eviction.StatFs(path)
		return fs.Capacity, fs.Available, err
	}
}
