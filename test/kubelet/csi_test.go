package kubelet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"go.uber.org/mock/gomock"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/hivelet/hivelet/kubelet-lite/csi/csitest"
	"github.com/hivelet/hivelet/kubelet-lite/volumes"
	"github.com/hivelet/hivelet/test/harness"
)

const csiDriverName = "mock.csi.hivelet.test"

// bindDriver is csi-test's mock CSI node plugin made to do what a real
// driver does: NodeStageVolume bind-mounts the volume's backing directory
// on the staging path, NodePublishVolume the staging path (or, for an
// inline volume, a fresh directory) on the pod's target. It counts calls.
type bindDriver struct {
	mu      sync.Mutex
	calls   map[string]int
	backing map[string]string // volume ID → directory
	last    map[string]*csipb.NodePublishVolumeRequest
}

func (b *bindDriver) count(call string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[call]
}

func (b *bindDriver) note(call string) {
	b.mu.Lock()
	b.calls[call]++
	b.mu.Unlock()
}

func startBindDriver(t *testing.T, backing map[string]string) (*bindDriver, string) {
	node, endpoint := csitest.StartMock(t)
	dir := filepath.Dir(endpoint)
	b := &bindDriver{calls: map[string]int{}, backing: backing, last: map[string]*csipb.NodePublishVolumeRequest{}}
	bind := func(src, dst string, ro bool) error {
		if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			return err
		}
		if ro {
			return unix.Mount("", dst, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, "")
		}
		return nil
	}
	node.EXPECT().NodeGetInfo(gomock.Any(), gomock.Any()).Return(&csipb.NodeGetInfoResponse{NodeId: "mock-node-1", MaxVolumesPerNode: 8}, nil).AnyTimes()
	node.EXPECT().NodeGetCapabilities(gomock.Any(), gomock.Any()).Return(&csipb.NodeGetCapabilitiesResponse{Capabilities: []*csipb.NodeServiceCapability{{
		Type: &csipb.NodeServiceCapability_Rpc{Rpc: &csipb.NodeServiceCapability_RPC{Type: csipb.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME}}}}}, nil).AnyTimes()
	node.EXPECT().NodeStageVolume(gomock.Any(), gomock.Any()).DoAndReturn(func(_ context.Context, r *csipb.NodeStageVolumeRequest) (*csipb.NodeStageVolumeResponse, error) {
		b.note("stage")
		return &csipb.NodeStageVolumeResponse{}, bind(b.backing[r.VolumeId], r.StagingTargetPath, false)
	}).AnyTimes()
	node.EXPECT().NodePublishVolume(gomock.Any(), gomock.Any()).DoAndReturn(func(_ context.Context, r *csipb.NodePublishVolumeRequest) (*csipb.NodePublishVolumeResponse, error) {
		b.note("publish")
		b.mu.Lock()
		b.last[r.VolumeId] = r
		b.mu.Unlock()
		src := r.StagingTargetPath
		if src == "" { // inline: a scratch directory of its own
			src = filepath.Join(dir, "inline-"+r.VolumeId[:12])
			if err := os.MkdirAll(src, 0o777); err != nil {
				return nil, err
			}
			if err := os.WriteFile(filepath.Join(src, "who"), []byte(r.VolumeContext["csi.storage.k8s.io/pod.name"]), 0o644); err != nil {
				return nil, err
			}
		}
		if err := os.MkdirAll(r.TargetPath, 0o750); err != nil {
			return nil, err
		}
		return &csipb.NodePublishVolumeResponse{}, bind(src, r.TargetPath, r.Readonly)
	}).AnyTimes()
	node.EXPECT().NodeUnpublishVolume(gomock.Any(), gomock.Any()).DoAndReturn(func(_ context.Context, r *csipb.NodeUnpublishVolumeRequest) (*csipb.NodeUnpublishVolumeResponse, error) {
		b.note("unpublish")
		if err := unix.Unmount(r.TargetPath, 0); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			return nil, err
		}
		return &csipb.NodeUnpublishVolumeResponse{}, os.RemoveAll(r.TargetPath)
	}).AnyTimes()
	node.EXPECT().NodeUnstageVolume(gomock.Any(), gomock.Any()).DoAndReturn(func(_ context.Context, r *csipb.NodeUnstageVolumeRequest) (*csipb.NodeUnstageVolumeResponse, error) {
		b.note("unstage")
		if err := unix.Unmount(r.StagingTargetPath, 0); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			return nil, err
		}
		return &csipb.NodeUnstageVolumeResponse{}, nil
	}).AnyTimes()
	return b, endpoint
}

// TestPrivilegedKubeletLiteCSI: csi-test's mock CSI driver registers
// through the plugin watcher; the CSINode and the Node record it. A pod
// with a PersistentVolumeClaim bound to a CSI PersistentVolume waits for
// its VolumeAttachment, then runs with the volume staged and published
// (what it writes lands in the volume); a kubelet restart neither
// republishes nor unmounts it; deleting the pod unpublishes and unstages
// it. A pod with a CSI inline volume gets it published with its own
// identity, and unpublished when it goes.
func TestPrivilegedKubeletLiteCSI(t *testing.T) {
	e := newEnv(t, true, "")
	backing := t.TempDir()
	if err := os.WriteFile(filepath.Join(backing, "hello.txt"), []byte("from the volume\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	drv, endpoint := startBindDriver(t, map[string]string{"vol-1": backing})
	reg := csitest.NewRegistrar(csiDriverName, endpoint)
	regDir := filepath.Join(e.rootDir(), "plugins_registry")
	harness.WaitFor(t, "the plugin registration directory", func() bool { _, err := os.Stat(regDir); return err == nil })
	if err := reg.Serve(filepath.Join(regDir, "mock-reg.sock")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	harness.WaitFor(t, "the driver in the CSINode", func() bool {
		c, err := e.client.StorageV1().CSINodes().Get(e.ctx, e.node, metav1.GetOptions{})
		return err == nil && len(c.Spec.Drivers) == 1 && c.Spec.Drivers[0].Name == csiDriverName && c.Spec.Drivers[0].NodeID == "mock-node-1"
	})
	// The kubelet tells the plugin once the driver is recorded.
	harness.WaitFor(t, "the registration status", func() bool { return reg.Last() != nil })
	if st := reg.Last(); !st.PluginRegistered {
		t.Fatalf("registration status %+v", st)
	}
	n, err := e.client.CoreV1().Nodes().Get(e.ctx, e.node, metav1.GetOptions{})
	if err != nil || !strings.Contains(n.Annotations["csi.volume.kubernetes.io/nodeid"], `"`+csiDriverName+`":"mock-node-1"`) {
		t.Fatalf("nodeid annotation: %v %v", n.Annotations, err)
	}

	if _, err := e.client.StorageV1().CSIDrivers().Create(e.ctx, &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: csiDriverName},
		Spec: storagev1.CSIDriverSpec{AttachRequired: ptr.To(true), PodInfoOnMount: ptr.To(true),
			VolumeLifecycleModes: []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent, storagev1.VolumeLifecycleEphemeral}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.client.StorageV1().CSIDrivers().Delete(e.ctx, csiDriverName, metav1.DeleteOptions{}) })
	pvName := "pv-" + e.node
	bindClaim(t, e, "data", pvName, "vol-1")

	t.Run("a claim's volume waits for its attachment, then is staged and published", func(t *testing.T) {
		e.runPod(t, "claimer", nil, corev1.PodSpec{
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}},
			Containers: []corev1.Container{{Name: "c", Command: []string{"sh", "-c", "echo written-by-pod > /data/out; sleep 3600"},
				VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}}})
		e.waitPod(t, "claimer", "ContainerCreating, waiting for the VolumeAttachment", waitingWith("c", "ContainerCreating", "waiting for VolumeAttachment"))
		harness.WaitFor(t, "a FailedMount event", func() bool { return e.hasEvent("claimer", "FailedMount", "VolumeAttachment") })
		// The attach/detach controller and the driver's attacher would do
		// this; no controller manager runs here.
		va := &storagev1.VolumeAttachment{ObjectMeta: metav1.ObjectMeta{Name: vaName(t, "vol-1", e.node)},
			Spec: storagev1.VolumeAttachmentSpec{Attacher: csiDriverName, NodeName: e.node, Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: &pvName}}}
		va, err := e.client.StorageV1().VolumeAttachments().Create(e.ctx, va, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.client.StorageV1().VolumeAttachments().Delete(e.ctx, va.Name, metav1.DeleteOptions{}) })
		va.Status = storagev1.VolumeAttachmentStatus{Attached: true, AttachmentMetadata: map[string]string{"device": "/dev/mock0"}}
		if _, err := e.client.StorageV1().VolumeAttachments().UpdateStatus(e.ctx, va, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		p := e.waitPod(t, "claimer", "running with its volume", running)
		if got := e.exec(t, containerID(p, "c"), "cat", "/data/hello.txt"); got != "from the volume" {
			t.Fatalf("the pod reads %q from its volume", got)
		}
		harness.WaitFor(t, "the pod's write in the backing directory", func() bool {
			b, _ := os.ReadFile(filepath.Join(backing, "out"))
			return strings.TrimSpace(string(b)) == "written-by-pod"
		})
		if drv.count("stage") != 1 || drv.count("publish") != 1 {
			t.Fatalf("calls %v, want one stage and one publish", drv.calls)
		}
		drv.mu.Lock()
		req := drv.last["vol-1"]
		drv.mu.Unlock()
		if req.PublishContext["device"] != "/dev/mock0" || req.VolumeContext["csi.storage.k8s.io/pod.name"] != "claimer" || req.VolumeContext["csi.storage.k8s.io/ephemeral"] != "false" {
			t.Fatalf("NodePublishVolume carried %+v", req)
		}
	})

	t.Run("a kubelet restart keeps the volume as it is", func(t *testing.T) {
		e.kubelet.Stop(syscall.SIGTERM)
		e.start()
		// Long enough for the restarted kubelet to register the driver
		// again and sync the pod a few times.
		harness.WaitFor(t, "the volume adopted", func() bool { return strings.Contains(e.kubelet.Log(), "CSI volume adopted") })
		harness.WaitFor(t, "the driver registered again", func() bool { return strings.Contains(e.kubelet.Log(), "CSI driver registered") })
		p := e.waitPod(t, "claimer", "still running", running)
		if got := e.exec(t, containerID(p, "c"), "cat", "/data/hello.txt"); got != "from the volume" {
			t.Fatalf("after the restart the pod reads %q", got)
		}
		if drv.count("publish") != 1 || drv.count("unpublish") != 0 {
			t.Fatalf("calls %v across the restart", drv.calls)
		}
	})

	t.Run("a CSI inline volume is published with the pod's identity", func(t *testing.T) {
		e.runPod(t, "inline", nil, corev1.PodSpec{
			Volumes:    []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: csiDriverName, ReadOnly: ptr.To(true)}}}},
			Containers: []corev1.Container{{Name: "c", VolumeMounts: []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}}}})
		p := e.waitPod(t, "inline", "running", running)
		if got := e.exec(t, containerID(p, "c"), "cat", "/scratch/who"); got != "inline" {
			t.Fatalf("inline volume says %q", got)
		}
		if out := e.exec(t, containerID(p, "c"), "sh", "-c", "touch /scratch/x 2>&1 || true"); !strings.Contains(out, "Read-only") {
			t.Fatalf("a read-only inline volume took a write: %q", out)
		}
		if drv.count("stage") != 1 {
			t.Fatalf("an inline volume was staged: %v", drv.calls)
		}
		if err := e.client.CoreV1().Pods(e.ns).Delete(e.ctx, "inline", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		harness.WaitFor(t, "the inline volume unpublished and the pod's directory removed", func() bool {
			_, err := os.Stat(filepath.Join(e.rootDir(), "pods", string(p.UID)))
			return drv.count("unpublish") == 1 && os.IsNotExist(err)
		})
	})

	t.Run("deleting the pod unpublishes and unstages its volume", func(t *testing.T) {
		p := e.pod("claimer")
		if err := e.client.CoreV1().Pods(e.ns).Delete(e.ctx, "claimer", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		// A grace period of 0 lets the API server drop the pod at once;
		// the kubelet still stops it and tears its volume down.
		harness.WaitFor(t, "the volume unpublished and unstaged", func() bool { return drv.count("unpublish") == 2 && drv.count("unstage") == 1 })
		harness.WaitFor(t, "the pod's directory removed", func() bool {
			_, err := os.Stat(filepath.Join(e.rootDir(), "pods", string(p.UID)))
			return os.IsNotExist(err)
		})
		if mps, _ := volumes.MountsBeneath(e.rootDir()); len(mps) != 0 {
			t.Fatalf("still mounted under the kubelet's root: %v", mps)
		}
		if b, _ := os.ReadFile(filepath.Join(backing, "hello.txt")); string(b) != "from the volume\n" {
			t.Fatalf("the volume's data went with the pod: %q", b)
		}
	})

	t.Run("a pod deleted while the kubelet is down has its volume torn down once it is back", func(t *testing.T) {
		e.runPod(t, "orphan", nil, corev1.PodSpec{
			Volumes:    []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: csiDriverName}}}},
			Containers: []corev1.Container{{Name: "c", VolumeMounts: []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}}}})
		p := e.waitPod(t, "orphan", "running", running)
		before := drv.count("unpublish")
		e.kubelet.Stop(syscall.SIGTERM)
		if err := e.client.CoreV1().Pods(e.ns).Delete(e.ctx, "orphan", metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}); err != nil {
			t.Fatal(err)
		}
		e.start()
		harness.WaitFor(t, "the orphan's volume unpublished and its directory removed", func() bool {
			_, err := os.Stat(filepath.Join(e.rootDir(), "pods", string(p.UID)))
			return drv.count("unpublish") == before+1 && os.IsNotExist(err)
		})
		if mps, _ := volumes.MountsBeneath(e.rootDir()); len(mps) != 0 {
			t.Fatalf("still mounted under the kubelet's root: %v", mps)
		}
	})
}

// bindClaim makes a claim bound to a CSI PersistentVolume, as the
// PersistentVolume controller would bind them.
func bindClaim(t *testing.T, e *env, claim, pvName, handle string) {
	t.Helper()
	pvc, err := e.client.CoreV1().PersistentVolumeClaims(e.ns).Create(e.ctx, &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: claim},
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, VolumeName: pvName,
			StorageClassName: ptr.To(""),
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: pvName},
		Spec: corev1.PersistentVolumeSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			ClaimRef:               &corev1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: e.ns, Name: claim, UID: pvc.UID},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: csiDriverName, VolumeHandle: handle, FSType: "ext4"}}}}
	if _, err := e.client.CoreV1().PersistentVolumes().Create(e.ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.client.CoreV1().PersistentVolumes().Delete(e.ctx, pvName, metav1.DeleteOptions{}) })
	pvc.Status.Phase = corev1.ClaimBound
	if _, err := e.client.CoreV1().PersistentVolumeClaims(e.ns).UpdateStatus(e.ctx, pvc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// vaName is the VolumeAttachment name the attach/detach controller gives
// a CSI volume on a node.
func vaName(t *testing.T, handle, node string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(handle + csiDriverName + node))
	return "csi-" + hex.EncodeToString(sum[:])
}
