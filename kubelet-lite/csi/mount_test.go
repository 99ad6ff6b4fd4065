package csi

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"go.uber.org/mock/gomock"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/hivelet/hivelet/test/testnet"
)

// registered returns a manager with the mock driver registered.
func registered(t *testing.T, api *fakeAPI, stage bool) (*Manager, *mockPlugin) {
	t.Helper()
	m := newTestManager(t, api)
	p := startMock(t, stage)
	register(t, m, testDriver, p, nil)
	waitFor(t, "driver registered", func() bool { return m.driver(testDriver) != nil })
	return m, p
}

// claim adds a PVC bound to a CSI PV with that handle.
func (f *fakeAPI) claim(ns, name, pvName, handle string) {
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name)},
		Spec: corev1.PersistentVolumeClaimSpec{VolumeName: pvName}, Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound}}
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: pvName},
		Spec: corev1.PersistentVolumeSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			ClaimRef:     &corev1.ObjectReference{Namespace: ns, Name: name, UID: pvc.UID},
			MountOptions: []string{"noatime"},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{
				Driver: testDriver, VolumeHandle: handle, FSType: "ext4", VolumeAttributes: map[string]string{"tier": "gold"},
				NodeStageSecretRef: &corev1.SecretReference{Namespace: "kube-system", Name: "stage-creds"}}}}}
	f.claims[ns+"/"+name] = pvc
	f.pvs[pvName] = pv
}

func podWith(name string, vols ...corev1.Volume) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("pod-" + name)},
		Spec: corev1.PodSpec{ServiceAccountName: "sa", Volumes: vols}}
}

func claimVolume(claim string) corev1.Volume {
	return corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}
}

// A claim's volume waits for its attachment, is staged once for the node
// and published per pod with what the PV, its secret and the attachment
// say; it is unstaged only when the last pod using it is torn down.
func TestSetUpPersistentVolumeStagesOncePublishesPerPod(t *testing.T) {
	api := newFakeAPI("node-a")
	api.claim("ns", "claim", "pv-1", "vol-1")
	api.secrets["kube-system/stage-creds"] = &corev1.Secret{Data: map[string][]byte{"password": []byte("s3cret")}}
	m, p := registered(t, api, true)
	ctx := context.Background()
	a, b := podWith("a", claimVolume("claim")), podWith("b", claimVolume("claim"))

	_, _, err := m.SetUp(ctx, a, &a.Spec.Volumes[0])
	if err == nil || !strings.Contains(err.Error(), "waiting for VolumeAttachment") {
		t.Fatalf("no attachment yet: err %v", err)
	}
	va := attachmentName("vol-1", testDriver, "node-a")
	api.vas[va] = &storagev1.VolumeAttachment{ObjectMeta: metav1.ObjectMeta{Name: va}, Spec: storagev1.VolumeAttachmentSpec{NodeName: "node-a"},
		Status: storagev1.VolumeAttachmentStatus{Attached: true, AttachmentMetadata: map[string]string{"devicePath": "/dev/vdx"}}}

	staging := m.stagingDir(testDriver, "vol-1")
	p.node.EXPECT().NodeStageVolume(gomock.Any(), gomock.Any()).DoAndReturn(func(_ context.Context, r *csipb.NodeStageVolumeRequest) (*csipb.NodeStageVolumeResponse, error) {
		if r.VolumeId != "vol-1" || r.StagingTargetPath != staging || r.PublishContext["devicePath"] != "/dev/vdx" ||
			r.Secrets["password"] != "s3cret" || r.VolumeContext["tier"] != "gold" {
			t.Errorf("NodeStageVolume %+v", r)
		}
		if mnt := r.VolumeCapability.GetMount(); mnt.FsType != "ext4" || len(mnt.MountFlags) != 1 || r.VolumeCapability.AccessMode.Mode != csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER {
			t.Errorf("capability %+v", r.VolumeCapability)
		}
		if st, err := os.Stat(r.StagingTargetPath); err != nil || !st.IsDir() {
			t.Errorf("staging path not made by the kubelet: %v", err)
		}
		return &csipb.NodeStageVolumeResponse{}, nil
	}).Times(1)
	targets := map[string]bool{}
	p.node.EXPECT().NodePublishVolume(gomock.Any(), gomock.Any()).DoAndReturn(func(_ context.Context, r *csipb.NodePublishVolumeRequest) (*csipb.NodePublishVolumeResponse, error) {
		if r.StagingTargetPath != staging || r.Readonly || r.PublishContext["devicePath"] != "/dev/vdx" {
			t.Errorf("NodePublishVolume %+v", r)
		}
		targets[r.TargetPath] = true
		return &csipb.NodePublishVolumeResponse{}, nil
	}).Times(2)

	pathA, ro, err := m.SetUp(ctx, a, &a.Spec.Volumes[0])
	if err != nil || ro {
		t.Fatalf("SetUp a: %v, ro %v", err, ro)
	}
	if want := filepath.Join(m.root, "pods", "pod-a", "volumes", "kubernetes.io~csi", "data", "mount"); pathA != want || !targets[want] {
		t.Fatalf("target %s, want %s (published %v)", pathA, want, targets)
	}
	if again, _, err := m.SetUp(ctx, a, &a.Spec.Volumes[0]); err != nil || again != pathA {
		t.Fatalf("second SetUp: %v", err) // and no second publish (Times(2) counts b's)
	}
	// The staging is not a mount here (the mock mounts nothing), so a
	// second pod stages again, which CSI allows; with a real driver it is
	// skipped. Expect it once more.
	p.node.EXPECT().NodeStageVolume(gomock.Any(), gomock.Any()).Return(&csipb.NodeStageVolumeResponse{}, nil).Times(1)
	if _, _, err := m.SetUp(ctx, b, &b.Spec.Volumes[0]); err != nil {
		t.Fatal(err)
	}

	p.node.EXPECT().NodeUnpublishVolume(gomock.Any(), gomock.Any()).DoAndReturn(func(_ context.Context, r *csipb.NodeUnpublishVolumeRequest) (*csipb.NodeUnpublishVolumeResponse, error) {
		if !targets[r.TargetPath] || r.VolumeId != "vol-1" {
			t.Errorf("NodeUnpublishVolume %+v", r)
		}
		return &csipb.NodeUnpublishVolumeResponse{}, nil
	}).Times(2)
	if err := m.TearDown(ctx, "pod-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(pathA)); !os.IsNotExist(err) {
		t.Fatalf("volume directory left: %v", err)
	}
	// Only b's teardown unstages.
	p.node.EXPECT().NodeUnstageVolume(gomock.Any(), gomock.Any()).DoAndReturn(func(_ context.Context, r *csipb.NodeUnstageVolumeRequest) (*csipb.NodeUnstageVolumeResponse, error) {
		if r.StagingTargetPath != staging {
			t.Errorf("NodeUnstageVolume %+v", r)
		}
		return &csipb.NodeUnstageVolumeResponse{}, nil
	}).Times(1)
	if err := m.TearDown(ctx, "pod-b"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(staging); !os.IsNotExist(err) {
		t.Fatalf("staging directory left: %v", err)
	}
}

// An inline volume is published with the pod's identity when the driver
// asks for it, never staged, and refused by a driver that does not serve
// ephemeral volumes.
func TestSetUpInlineVolume(t *testing.T) {
	api := newFakeAPI("node-a")
	m, p := registered(t, api, true)
	ctx := context.Background()
	inline := corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
		Driver: testDriver, ReadOnly: ptr.To(true), VolumeAttributes: map[string]string{"size": "1Gi"}}}}
	pod := podWith("inl", inline)
	if _, _, err := m.SetUp(ctx, pod, &pod.Spec.Volumes[0]); err == nil || !strings.Contains(err.Error(), "does not serve Ephemeral") {
		t.Fatalf("driver without Ephemeral mode: %v", err)
	}
	api.drivers[testDriver] = &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: testDriver}, Spec: storagev1.CSIDriverSpec{
		PodInfoOnMount:       ptr.To(true),
		VolumeLifecycleModes: []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecycleEphemeral}}}
	p.node.EXPECT().NodePublishVolume(gomock.Any(), gomock.Any()).DoAndReturn(func(_ context.Context, r *csipb.NodePublishVolumeRequest) (*csipb.NodePublishVolumeResponse, error) {
		c := r.VolumeContext
		if r.VolumeId != inlineHandle("pod-inl", "scratch") || r.StagingTargetPath != "" || !r.Readonly || c["size"] != "1Gi" ||
			c["csi.storage.k8s.io/pod.name"] != "inl" || c["csi.storage.k8s.io/pod.uid"] != "pod-inl" ||
			c["csi.storage.k8s.io/serviceAccount.name"] != "sa" || c["csi.storage.k8s.io/ephemeral"] != "true" {
			t.Errorf("NodePublishVolume %+v", r)
		}
		return &csipb.NodePublishVolumeResponse{}, nil
	}).Times(1)
	if _, ro, err := m.SetUp(ctx, pod, &pod.Spec.Volumes[0]); err != nil || !ro {
		t.Fatalf("SetUp: %v ro %v", err, ro)
	}
	p.node.EXPECT().NodeUnpublishVolume(gomock.Any(), gomock.Any()).Return(&csipb.NodeUnpublishVolumeResponse{}, nil).Times(1)
	if err := m.TearDown(ctx, "pod-inl"); err != nil { // and no unstage: never staged
		t.Fatal(err)
	}
}

// What a pod or a claim cannot make the kubelet do.
func TestSetUpRefusals(t *testing.T) {
	api := newFakeAPI("node-a")
	api.drivers[testDriver] = &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: testDriver}, Spec: storagev1.CSIDriverSpec{AttachRequired: ptr.To(false)}}
	api.claim("ns", "mine", "pv-mine", "vol-mine")
	api.claim("ns", "other", "pv-other", "vol-other")
	// A claim that names a volume bound to another claim.
	api.claims["ns/thief"] = &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "thief", UID: "uid-thief"},
		Spec: corev1.PersistentVolumeClaimSpec{VolumeName: "pv-other"}, Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound}}
	api.claims["ns/pending"] = &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "pending"}}
	api.claim("ns", "nfs", "pv-nfs", "x")
	api.pvs["pv-nfs"].Spec.CSI = nil
	api.pvs["pv-nfs"].Spec.NFS = &corev1.NFSVolumeSource{Server: "nfs", Path: "/"}
	api.claim("ns", "block", "pv-block", "vol-block")
	api.pvs["pv-block"].Spec.VolumeMode = ptr.To(corev1.PersistentVolumeBlock)
	api.claim("ns", "elsewhere", "pv-elsewhere", "vol-e")
	api.pvs["pv-elsewhere"].Spec.CSI.Driver = "other.example.com"
	m, _ := registered(t, api, false)
	ctx := context.Background()
	inline := func(driver string) corev1.Volume {
		return corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: driver}}}
	}
	ephemeral := corev1.Volume{Name: "eph", VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{}}}
	api.claim("ns", "p-eph", "pv-eph", "vol-eph") // named for the pod, but not owned by it
	for _, tc := range []struct {
		name string
		vol  corev1.Volume
		want string
	}{
		{"claim of another's volume", claimVolume("thief"), "not bound to claim ns/thief"},
		{"unbound claim", claimVolume("pending"), "not bound yet"},
		{"missing claim", claimVolume("nope"), "not found"},
		{"not CSI", claimVolume("nfs"), "not a CSI volume"},
		{"block", claimVolume("block"), "raw block"},
		{"driver path", inline("../../../etc"), "not a DNS subdomain"},
		{"unregistered driver", claimVolume("elsewhere"), "driver other.example.com is not registered on this node"},
		{"ephemeral claim not owned by the pod", ephemeral, "not created for this pod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := podWith("p", tc.vol)
			if _, _, err := m.SetUp(ctx, pod, &pod.Spec.Volumes[0]); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	if err := m.TearDown(ctx, "../x"); err == nil {
		t.Fatal("TearDown took a UID with a path in it")
	}
	// Without an API server there is nothing to resolve a claim with.
	bare := newTestManager(t, nil)
	pod := podWith("p", claimVolume("mine"))
	if _, _, err := bare.SetUp(ctx, pod, &pod.Spec.Volumes[0]); err == nil || !strings.Contains(err.Error(), "need an API server") {
		t.Fatalf("no API: %v", err)
	}
}

// A volume whose driver went away stays, recorded, until the driver is
// back: its teardown fails and can be tried again.
func TestTearDownWaitsForDriver(t *testing.T) {
	api := newFakeAPI("node-a")
	api.drivers[testDriver] = &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: testDriver}, Spec: storagev1.CSIDriverSpec{AttachRequired: ptr.To(false)}}
	api.claim("ns", "claim", "pv-1", "vol-1")
	m, p := registered(t, api, false)
	ctx := context.Background()
	pod := podWith("a", claimVolume("claim"))
	p.node.EXPECT().NodePublishVolume(gomock.Any(), gomock.Any()).Return(&csipb.NodePublishVolumeResponse{}, nil).Times(1)
	if _, _, err := m.SetUp(ctx, pod, &pod.Spec.Volumes[0]); err != nil {
		t.Fatal(err)
	}
	m.deregister(ctx, testDriver)
	if err := m.TearDown(ctx, "pod-a"); err == nil || !strings.Contains(err.Error(), "not registered") {
		t.Fatalf("TearDown without the driver: %v", err)
	}
	if _, err := os.Stat(filepath.Join(m.volumeDir("pod-a", "data"), dataFile)); err != nil {
		t.Fatalf("record lost: %v", err)
	}
	// The plugin registers again (its socket is recreated).
	p2 := startMock(t, false)
	register(t, m, testDriver, p2, nil)
	waitFor(t, "driver back", func() bool { return m.driver(testDriver) != nil })
	p2.node.EXPECT().NodeUnpublishVolume(gomock.Any(), gomock.Any()).Return(&csipb.NodeUnpublishVolumeResponse{}, nil).Times(1)
	if err := m.TearDown(ctx, "pod-a"); err != nil {
		t.Fatal(err)
	}
}

// A pod's fsGroup reaches a ReadWriteOnce volume with a file system type
// (upstream's default fsGroupPolicy): the kubelet gives the published
// files the group; with fsGroupPolicy None it leaves them alone.
func TestPrivilegedSetUpFSGroup(t *testing.T) {
	testnet.RequireRoot(t) // chown
	for _, tc := range []struct {
		name   string
		policy *storagev1.FSGroupPolicy
		want   uint32
	}{
		{"default policy", nil, 5555},
		{"policy None", ptr.To(storagev1.NoneFSGroupPolicy), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := newFakeAPI("node-a")
			api.drivers[testDriver] = &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: testDriver},
				Spec: storagev1.CSIDriverSpec{AttachRequired: ptr.To(false), FSGroupPolicy: tc.policy}}
			api.claim("ns", "claim", "pv-1", "vol-1")
			m, p := registered(t, api, false)
			p.node.EXPECT().NodePublishVolume(gomock.Any(), gomock.Any()).DoAndReturn(func(_ context.Context, r *csipb.NodePublishVolumeRequest) (*csipb.NodePublishVolumeResponse, error) {
				if r.VolumeCapability.GetMount().VolumeMountGroup != "" {
					t.Errorf("VolumeMountGroup %q to a driver without VOLUME_MOUNT_GROUP", r.VolumeCapability.GetMount().VolumeMountGroup)
				}
				if err := os.MkdirAll(r.TargetPath, 0o755); err != nil {
					return nil, err
				}
				return &csipb.NodePublishVolumeResponse{}, os.WriteFile(filepath.Join(r.TargetPath, "f"), []byte("x"), 0o644)
			}).Times(1)
			pod := podWith("a", claimVolume("claim"))
			pod.Spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: ptr.To(int64(5555))}
			target, _, err := m.SetUp(context.Background(), pod, &pod.Spec.Volumes[0])
			if err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(filepath.Join(target, "f"))
			if err != nil {
				t.Fatal(err)
			}
			if gid := st.Sys().(*syscall.Stat_t).Gid; gid != tc.want {
				t.Fatalf("file group %d, want %d", gid, tc.want)
			}
		})
	}
}

// A claim bound to a hostPath or local PersistentVolume is the node's
// directory itself, no driver involved; a local volume's directory must
// exist, and a PV path with ".." is refused.
func TestSetUpHostPathAndLocalVolumes(t *testing.T) {
	api := newFakeAPI("node-a")
	dir := t.TempDir()
	api.claim("ns", "hp", "pv-hp", "x")
	api.pvs["pv-hp"].Spec.CSI = nil
	api.pvs["pv-hp"].Spec.HostPath = &corev1.HostPathVolumeSource{Path: filepath.Join(dir, "made"), Type: ptr.To(corev1.HostPathDirectoryOrCreate)}
	api.claim("ns", "local", "pv-local", "y")
	api.pvs["pv-local"].Spec.CSI = nil
	api.pvs["pv-local"].Spec.Local = &corev1.LocalVolumeSource{Path: filepath.Join(dir, "disk1")}
	api.claim("ns", "evil", "pv-evil", "z")
	api.pvs["pv-evil"].Spec.CSI = nil
	api.pvs["pv-evil"].Spec.HostPath = &corev1.HostPathVolumeSource{Path: "/var/lib/../../etc"}
	m := newTestManager(t, api)
	ctx := context.Background()
	pod := podWith("a", claimVolume("hp"))
	pod.Spec.Volumes[0].PersistentVolumeClaim.ReadOnly = true
	got, ro, err := m.SetUp(ctx, pod, &pod.Spec.Volumes[0])
	if err != nil || got != filepath.Join(dir, "made") || !ro {
		t.Fatalf("hostPath PV: %q ro %v: %v", got, ro, err)
	}
	if st, err := os.Stat(got); err != nil || !st.IsDir() {
		t.Fatalf("DirectoryOrCreate not created: %v", err)
	}
	pod = podWith("b", claimVolume("local"))
	if _, _, err := m.SetUp(ctx, pod, &pod.Spec.Volumes[0]); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("missing local directory: %v", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "disk1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, _, err := m.SetUp(ctx, pod, &pod.Spec.Volumes[0]); err != nil || got != filepath.Join(dir, "disk1") {
		t.Fatalf("local PV: %q %v", got, err)
	}
	pod = podWith("c", claimVolume("evil"))
	if _, _, err := m.SetUp(ctx, pod, &pod.Spec.Volumes[0]); err == nil || !strings.Contains(err.Error(), "without \"..\"") {
		t.Fatalf("a PV path with ..: %v", err)
	}
	if err := m.TearDown(ctx, "pod-a"); err != nil {
		t.Fatal(err)
	}
}
