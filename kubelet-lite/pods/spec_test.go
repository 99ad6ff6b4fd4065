package pods

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func res(cpu, mem string) corev1.ResourceList {
	l := corev1.ResourceList{}
	if cpu != "" {
		l[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		l[corev1.ResourceMemory] = resource.MustParse(mem)
	}
	return l
}

func TestQOSClassAndCgroupParent(t *testing.T) {
	for _, c := range []struct {
		name        string
		req, lim    corev1.ResourceList
		want        corev1.PodQOSClass
		wantGroup   string
		wantSlice   string // systemd's cgroup parent
		wantSysPath string // and its directory
	}{
		{"nothing set", nil, nil, corev1.PodQOSBestEffort, "/r/kubepods/besteffort/podu-1",
			"kubepods-besteffort-podu_1.slice", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podu_1.slice"},
		{"limits only (requests default to them)", nil, res("500m", "64Mi"), corev1.PodQOSGuaranteed, "/r/kubepods/podu-1",
			"kubepods-podu_1.slice", "/kubepods.slice/kubepods-podu_1.slice"},
		{"requests equal limits", res("1", "1Gi"), res("1", "1Gi"), corev1.PodQOSGuaranteed, "/r/kubepods/podu-1",
			"kubepods-podu_1.slice", "/kubepods.slice/kubepods-podu_1.slice"},
		{"requests below limits", res("100m", "64Mi"), res("1", "1Gi"), corev1.PodQOSBurstable, "/r/kubepods/burstable/podu-1",
			"kubepods-burstable-podu_1.slice", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podu_1.slice"},
		{"memory limit only", nil, res("", "64Mi"), corev1.PodQOSBurstable, "/r/kubepods/burstable/podu-1",
			"kubepods-burstable-podu_1.slice", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podu_1.slice"},
	} {
		pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Resources: corev1.ResourceRequirements{Requests: c.req, Limits: c.lim}}}}}
		pod.UID = "u-1"
		if got := QOSClass(pod); got != c.want {
			t.Errorf("%s: QoS %s, want %s", c.name, got, c.want)
		}
		if got := CgroupParent(DriverCgroupfs, "/r", pod); got != c.wantGroup {
			t.Errorf("%s: cgroup %s, want %s", c.name, got, c.wantGroup)
		}
		if got := CgroupParent(DriverSystemd, "/", pod); got != c.wantSlice {
			t.Errorf("%s: systemd cgroup parent %s, want %s", c.name, got, c.wantSlice)
		}
		if got := (cgroupNaming{DriverSystemd, "/"}).dir(podCgroupNames(pod)); got != c.wantSysPath {
			t.Errorf("%s: systemd cgroup directory %s, want %s", c.name, got, c.wantSysPath)
		}
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "x", "B": "y"}
	for in, want := range map[string]string{
		"$(A)-$(B)": "x-y", "$(C)": "$(C)", "$$(A)": "$(A)", "plain": "plain", "$(A)$(A)": "xx",
	} {
		if got := expand(in, vars); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPullPolicyDefaults(t *testing.T) {
	for image, want := range map[string]corev1.PullPolicy{
		"busybox": corev1.PullAlways, "busybox:latest": corev1.PullAlways, "busybox:1.36": corev1.PullIfNotPresent,
		"registry:5000/app": corev1.PullAlways, "registry:5000/app:v1": corev1.PullIfNotPresent,
		"app@sha256:abcd": corev1.PullIfNotPresent,
	} {
		if got := pullPolicy(&corev1.Container{Image: image}); got != want {
			t.Errorf("%s: %s, want %s", image, got, want)
		}
	}
}

func TestRegistryAndPullSecrets(t *testing.T) {
	for image, want := range map[string]string{"busybox": "docker.io", "library/busybox": "docker.io", "quay.io/x/y:1": "quay.io", "localhost:5000/a": "localhost:5000"} {
		if got := registryOf(image); got != want {
			t.Errorf("registryOf(%s) = %s, want %s", image, got, want)
		}
	}
	s := &corev1.Secret{Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"quay.io":{"auth":"dXNlcjpwYXNz"}}}`)}}
	auths, err := dockerAuths(s)
	if err != nil || auths["quay.io"].Username != "user" || auths["quay.io"].Password != "pass" {
		t.Errorf("dockerAuths: %+v %v", auths, err)
	}
	if _, err := dockerAuths(&corev1.Secret{}); err == nil {
		t.Error("a secret without .dockerconfigjson accepted")
	}
}

func TestShouldRestart(t *testing.T) {
	for _, c := range []struct {
		policy corev1.RestartPolicy
		code   int32
		want   bool
	}{{corev1.RestartPolicyAlways, 0, true}, {corev1.RestartPolicyOnFailure, 0, false}, {corev1.RestartPolicyOnFailure, 1, true}, {corev1.RestartPolicyNever, 1, false}} {
		if got := shouldRestart(c.policy, c.code); got != c.want {
			t.Errorf("%s exit %d: %v", c.policy, c.code, got)
		}
	}
}

func TestReadStaticRejectsBadManifests(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := writeFileForTest(dir, name, body); err != nil {
			t.Fatal(err)
		}
	}
	write("good.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: c, image: busybox}]}\n")
	write("bad.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: web2}\nspec: {containers: [{name: c, image: busybox, bogus: 1}]}\n")
	write("empty.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: web3}\nspec: {}\n")
	write("notes.txt", "ignored")
	pods, errs := readStatic(dir, "n1")
	if len(pods) != 1 || pods[0].Name != "web-n1" || pods[0].Namespace != "default" || pods[0].Spec.NodeName != "n1" || !IsStatic(pods[0]) {
		t.Fatalf("pods %+v", pods)
	}
	if len(errs) != 2 {
		t.Errorf("errors %v, want one for the unknown field and one for no containers", errs)
	}
	again, _ := readStatic(dir, "n1")
	if again[0].UID != pods[0].UID {
		t.Error("the same file gave another UID")
	}
}

func TestCheckImageRef(t *testing.T) {
	for _, ok := range []string{"busybox", "busybox:1.36", "library/busybox", "docker.io/library/busybox:latest",
		"127.0.0.1:5000/team/app:v1", "localhost:5000/a_b/c-d:1", "registry.k8s.io/pause:3.10",
		"quay.io/x/y@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "[::1]:5000/app:v1"} {
		if err := checkImageRef(ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Busybox", "team/App:1", "busybox:", "a//b", "busybox::1", "busybox:-x", "bad image", "x@sha256:12"} {
		if err := checkImageRef(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
