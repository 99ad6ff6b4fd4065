package pods

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"
)

func securePod() *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u-1"}, Spec: corev1.PodSpec{
		SecurityContext: &corev1.PodSecurityContext{RunAsUser: ptr.To(int64(1000)), RunAsGroup: ptr.To(int64(3000)),
			SupplementalGroups: []int64{4000}, FSGroup: ptr.To(int64(2000)),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
		Containers: []corev1.Container{{Name: "c", Image: "busybox", SecurityContext: &corev1.SecurityContext{
			RunAsUser:                ptr.To(int64(1001)),
			ReadOnlyRootFilesystem:   ptr.To(true),
			AllowPrivilegeEscalation: ptr.To(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_BIND_SERVICE"}},
		}}},
	}}
}

func TestContainerSecurity(t *testing.T) {
	m := &Manager{cfg: Config{RootDir: "/var/lib/k"}}
	pod := securePod()
	sc := m.containerSecurity(pod, &pod.Spec.Containers[0])
	if sc.RunAsUser.GetValue() != 1001 || sc.RunAsGroup.GetValue() != 3000 {
		t.Errorf("user %v group %v: the container's runAsUser wins, the pod's runAsGroup fills in", sc.RunAsUser, sc.RunAsGroup)
	}
	if !sc.ReadonlyRootfs || !sc.NoNewPrivs || sc.Privileged {
		t.Errorf("readonly %v no_new_privs %v privileged %v", sc.ReadonlyRootfs, sc.NoNewPrivs, sc.Privileged)
	}
	if !slices.Equal(sc.Capabilities.DropCapabilities, []string{"ALL"}) || !slices.Equal(sc.Capabilities.AddCapabilities, []string{"NET_BIND_SERVICE"}) {
		t.Errorf("capabilities %+v", sc.Capabilities)
	}
	if !slices.Equal(sc.SupplementalGroups, []int64{4000, 2000}) {
		t.Errorf("supplemental groups %v, want the pod's and its fsGroup", sc.SupplementalGroups)
	}
	if sc.Seccomp.ProfileType != runtimeapi.SecurityProfile_RuntimeDefault {
		t.Errorf("seccomp %v, want the pod's RuntimeDefault", sc.Seccomp)
	}
	if len(sc.MaskedPaths) == 0 || len(sc.ReadonlyPaths) == 0 {
		t.Error("default masked and read-only /proc paths missing")
	}
	ns := sc.NamespaceOptions
	if ns.Network != runtimeapi.NamespaceMode_POD || ns.Pid != runtimeapi.NamespaceMode_CONTAINER || ns.Ipc != runtimeapi.NamespaceMode_POD {
		t.Errorf("namespaces %+v", ns)
	}

	// Not set anywhere: no_new_privs stays the runtime's default (off),
	// seccomp unconfined unless seccompDefault.
	bare := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}}
	sc = m.containerSecurity(bare, &bare.Spec.Containers[0])
	if sc.NoNewPrivs || sc.RunAsUser != nil || sc.Seccomp.ProfileType != runtimeapi.SecurityProfile_Unconfined {
		t.Errorf("defaults: %+v", sc)
	}
	m.cfg.SeccompDefault = true
	if sc = m.containerSecurity(bare, &bare.Spec.Containers[0]); sc.Seccomp.ProfileType != runtimeapi.SecurityProfile_RuntimeDefault {
		t.Errorf("seccompDefault: %v", sc.Seccomp)
	}
	bare.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr.To("profiles/a.json")}}
	sc = m.containerSecurity(bare, &bare.Spec.Containers[0])
	if !sc.Privileged || sc.MaskedPaths != nil || sc.Seccomp.LocalhostRef != "/var/lib/k/seccomp/profiles/a.json" {
		t.Errorf("privileged with a Localhost profile: %+v", sc)
	}
	if !m.sandboxSecurity(bare).Privileged {
		t.Error("a privileged container's sandbox is not privileged")
	}
}

func TestNamespacesAndHostname(t *testing.T) {
	m := &Manager{cfg: Config{RootDir: "/r", CgroupRoot: "/"}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: strings.Repeat("a", 62) + "-bc", Namespace: "ns", UID: "u"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}}
	if cfg, _ := m.SandboxConfig(pod, 0); cfg.Hostname != strings.Repeat("a", 62) {
		t.Errorf("hostname %q: want the name cut to 63 without the trailing '-'", cfg.Hostname)
	}
	pod.Spec.HostNetwork, pod.Spec.HostPID, pod.Spec.HostIPC = true, true, true
	cfg, err := m.SandboxConfig(pod, 0)
	if err != nil || cfg.Hostname != "" {
		t.Errorf("hostNetwork sandbox hostname %q: the runtime refuses one without a UTS namespace", cfg.Hostname)
	}
	ns := cfg.Linux.SecurityContext.NamespaceOptions
	if ns.Network != runtimeapi.NamespaceMode_NODE || ns.Pid != runtimeapi.NamespaceMode_NODE || ns.Ipc != runtimeapi.NamespaceMode_NODE {
		t.Errorf("host namespaces %+v", ns)
	}
	pod.Spec.HostNetwork, pod.Spec.HostPID, pod.Spec.HostIPC = false, false, false
	pod.Spec.ShareProcessNamespace = ptr.To(true)
	if ns := namespaces(pod); ns.Pid != runtimeapi.NamespaceMode_POD {
		t.Errorf("shareProcessNamespace: pid %v", ns.Pid)
	}
}

func TestCheckRunAsNonRoot(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
		Spec: corev1.PodSpec{SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true)}, Containers: []corev1.Container{{Name: "c"}}}}
	c := &pod.Spec.Containers[0]
	for _, tc := range []struct {
		uid  *int64
		user string
		ok   bool
	}{
		{nil, "", false}, // no user in the image: root
		{ptr.To(int64(0)), "", false},
		{nil, "nobody", false}, // a name cannot be verified
		{ptr.To(int64(65534)), "", true},
	} {
		if err := checkRunAsNonRoot(pod, c, tc.uid, tc.user); (err == nil) != tc.ok {
			t.Errorf("image uid %v user %q: %v", tc.uid, tc.user, err)
		}
	}
	c.SecurityContext = &corev1.SecurityContext{RunAsUser: ptr.To(int64(0))}
	if err := checkRunAsNonRoot(pod, c, ptr.To(int64(1000)), ""); err == nil || !strings.Contains(err.Error(), "runAsUser breaks non-root policy") {
		t.Errorf("runAsUser 0 with runAsNonRoot: %v", err)
	}
	c.SecurityContext.RunAsUser = ptr.To(int64(1000))
	if err := checkRunAsNonRoot(pod, c, nil, ""); err != nil {
		t.Errorf("runAsUser 1000 over a root image: %v", err)
	}
}

func TestCheckSysctls(t *testing.T) {
	pod := func(host bool, names ...string) *corev1.Pod {
		p := &corev1.Pod{Spec: corev1.PodSpec{HostNetwork: host, SecurityContext: &corev1.PodSecurityContext{}}}
		for _, n := range names {
			p.Spec.SecurityContext.Sysctls = append(p.Spec.SecurityContext.Sysctls, corev1.Sysctl{Name: n, Value: "1"})
		}
		return p
	}
	for _, tc := range []struct {
		pod     *corev1.Pod
		allowed []string
		ok      bool
	}{
		{pod(false, "net.ipv4.tcp_syncookies", "kernel.shm_rmid_forced"), nil, true},
		{pod(false, "net/ipv4/ip_local_port_range"), nil, true},
		{pod(false, "net.core.somaxconn"), nil, false},
		{pod(false, "net.core.somaxconn"), []string{"net.core.*"}, true},
		{pod(false, "vm.overcommit_memory"), []string{"*"}, false}, // not namespaced: never
		{pod(true, "net.ipv4.tcp_syncookies"), nil, false},         // the node's network
		{pod(false, "kernel.msgmax"), []string{"kernel.msg*"}, true},
	} {
		if err := checkSysctls(tc.pod, tc.allowed); (err == nil) != tc.ok {
			t.Errorf("%v allowed %v: %v", tc.pod.Spec.SecurityContext.Sysctls, tc.allowed, err)
		}
	}
}
