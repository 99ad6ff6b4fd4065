package kubeletlite

import (
	"context"
	"sync"
	"time"

	"github.com/hivelet/hivelet/kubelet-lite/cri"
	"github.com/hivelet/hivelet/kubelet-lite/eviction"
	"github.com/hivelet/hivelet/kubelet-lite/imagegc"
)

// imageFsRefresh is how often the runtime is asked where its images
// are: the eviction manager reads the file systems four times a second.
const imageFsRefresh = time.Minute

// filesystems reads nodefs (the root dir's file system) and imagefs (the
// runtime's), for the eviction manager's disk signals.
func filesystems(rt *cri.Client, rootDir string) func(context.Context) (eviction.Fs, eviction.Fs, error) {
	var (
		mu     sync.Mutex
		path   string
		looked time.Time
	)
	return func(ctx context.Context) (eviction.Fs, eviction.Fs, error) {
		mu.Lock()
		if time.Since(looked) > imageFsRefresh {
			path, looked = imagegc.Path(ctx, rt, rootDir), time.Now()
		}
		imagePath := path
		mu.Unlock()
		nodefs, err := eviction.StatFs(rootDir)
		if err != nil {
			return nodefs, nodefs, err
		}
		imagefs, err := eviction.StatFs(imagePath)
		return nodefs, imagefs, err
	}
}
