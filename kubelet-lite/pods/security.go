package pods

import (
	"fmt"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hivelet/hivelet/kubelet-lite/volumes"
)

// Paths a container's /proc and /sys hide or show read-only unless its
// procMount is Unmasked: the upstream kubelet's lists (privileged
// containers get neither; the runtime clears them).
var (
	defaultMaskedPaths = []string{"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap"}
	defaultReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// effectiveSecurityContext is the container's security context with the
// pod's defaults filled in, as the upstream kubelet merges them.
func effectiveSecurityContext(pod *corev1.Pod, c *corev1.Container) *corev1.SecurityContext {
	eff := &corev1.SecurityContext{}
	if c.SecurityContext != nil {
		eff = c.SecurityContext.DeepCopy()
	}
	p := pod.Spec.SecurityContext
	if p == nil {
		return eff
	}
	if eff.SELinuxOptions == nil && p.SELinuxOptions != nil {
		eff.SELinuxOptions = p.SELinuxOptions.DeepCopy()
	}
	if eff.RunAsUser == nil {
		eff.RunAsUser = p.RunAsUser
	}
	if eff.RunAsGroup == nil {
		eff.RunAsGroup = p.RunAsGroup
	}
	if eff.RunAsNonRoot == nil {
		eff.RunAsNonRoot = p.RunAsNonRoot
	}
	if eff.SeccompProfile == nil && p.SeccompProfile != nil {
		eff.SeccompProfile = p.SeccompProfile.DeepCopy()
	}
	if eff.AppArmorProfile == nil && p.AppArmorProfile != nil {
		eff.AppArmorProfile = p.AppArmorProfile.DeepCopy()
	}
	return eff
}

// namespaces are the pod's namespace modes: the node's when the pod asks
// for hostNetwork/hostPID/hostIPC, one PID namespace for the pod with
// shareProcessNamespace, else one per container.
func namespaces(pod *corev1.Pod) *runtimeapi.NamespaceOption {
	ns := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD}
	if pod.Spec.HostNetwork {
		ns.Network = runtimeapi.NamespaceMode_NODE
	}
	if pod.Spec.HostIPC {
		ns.Ipc = runtimeapi.NamespaceMode_NODE
	}
	switch {
	case pod.Spec.HostPID:
		ns.Pid = runtimeapi.NamespaceMode_NODE
	case pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace:
		ns.Pid = runtimeapi.NamespaceMode_POD
	}
	return ns
}

// allContainers are the pod's init, main and ephemeral containers.
func allContainers(pod *corev1.Pod) []corev1.Container {
	out := make([]corev1.Container, 0, len(pod.Spec.InitContainers)+len(pod.Spec.Containers)+len(pod.Spec.EphemeralContainers))
	return append(append(append(out, pod.Spec.InitContainers...), pod.Spec.Containers...), ephemeralContainers(pod)...)
}

func privileged(c *corev1.Container) bool {
	return c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged
}

// supplementalGroups are the pod's supplemental groups and its fsGroup,
// which every container joins so it can use the volumes fsGroup owns.
func supplementalGroups(pod *corev1.Pod) []int64 {
	p := pod.Spec.SecurityContext
	if p == nil {
		return nil
	}
	groups := append([]int64{}, p.SupplementalGroups...)
	if p.FSGroup != nil {
		groups = append(groups, *p.FSGroup)
	}
	if len(groups) == 0 {
		return nil
	}
	return groups
}

// sandboxSecurity is the sandbox's security context.
func (m *Manager) sandboxSecurity(pod *corev1.Pod) *runtimeapi.LinuxSandboxSecurityContext {
	sc := &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: namespaces(pod), SupplementalGroups: supplementalGroups(pod)}
	for _, c := range allContainers(pod) {
		sc.Privileged = sc.Privileged || privileged(&c)
	}
	var profile *corev1.SeccompProfile
	if p := pod.Spec.SecurityContext; p != nil {
		sc.RunAsUser, sc.RunAsGroup = int64Value(p.RunAsUser), int64Value(p.RunAsGroup)
		sc.SelinuxOptions = selinux(p.SELinuxOptions)
		profile = p.SeccompProfile
	}
	sc.Seccomp = m.seccomp(profile, sc.Privileged)
	return sc
}

// containerSecurity is the container's security context for the runtime.
// runAsNonRoot is checked later, against the image's user.
func (m *Manager) containerSecurity(pod *corev1.Pod, c *corev1.Container) *runtimeapi.LinuxContainerSecurityContext {
	eff := effectiveSecurityContext(pod, c)
	priv := eff.Privileged != nil && *eff.Privileged
	sc := &runtimeapi.LinuxContainerSecurityContext{
		Privileged:         priv,
		NamespaceOptions:   namespaces(pod),
		SelinuxOptions:     selinux(eff.SELinuxOptions),
		RunAsUser:          int64Value(eff.RunAsUser),
		RunAsGroup:         int64Value(eff.RunAsGroup),
		ReadonlyRootfs:     eff.ReadOnlyRootFilesystem != nil && *eff.ReadOnlyRootFilesystem,
		SupplementalGroups: supplementalGroups(pod),
		// no_new_privs only when asked: the runtime's default is off.
		NoNewPrivs: eff.AllowPrivilegeEscalation != nil && !*eff.AllowPrivilegeEscalation,
		Seccomp:    m.seccomp(eff.SeccompProfile, priv),
	}
	if caps := eff.Capabilities; caps != nil {
		sc.Capabilities = &runtimeapi.Capability{}
		for _, c := range caps.Add {
			sc.Capabilities.AddCapabilities = append(sc.Capabilities.AddCapabilities, string(c))
		}
		for _, c := range caps.Drop {
			sc.Capabilities.DropCapabilities = append(sc.Capabilities.DropCapabilities, string(c))
		}
	}
	if !priv {
		if eff.ProcMount != nil && *eff.ProcMount == corev1.UnmaskedProcMount {
			sc.MaskedPaths, sc.ReadonlyPaths = []string{}, []string{}
		} else {
			sc.MaskedPaths, sc.ReadonlyPaths = defaultMaskedPaths, defaultReadonlyPaths
		}
	}
	if a := eff.AppArmorProfile; a != nil {
		sc.Apparmor = &runtimeapi.SecurityProfile{}
		switch a.Type {
		case corev1.AppArmorProfileTypeRuntimeDefault:
			sc.Apparmor.ProfileType, sc.ApparmorProfile = runtimeapi.SecurityProfile_RuntimeDefault, "runtime/default"
		case corev1.AppArmorProfileTypeUnconfined:
			sc.Apparmor.ProfileType, sc.ApparmorProfile = runtimeapi.SecurityProfile_Unconfined, "unconfined"
		case corev1.AppArmorProfileTypeLocalhost:
			sc.Apparmor.ProfileType = runtimeapi.SecurityProfile_Localhost
			if a.LocalhostProfile != nil {
				sc.Apparmor.LocalhostRef, sc.ApparmorProfile = *a.LocalhostProfile, "localhost/"+*a.LocalhostProfile
			}
		}
	}
	return sc
}

// seccomp is the runtime's seccomp profile: the one asked for, else
// RuntimeDefault when the node's seccompDefault is on, else Unconfined
// (the upstream kubelet's rules). A Localhost profile lives under
// <root-dir>/seccomp; a path that leaves it was refused by validation.
func (m *Manager) seccomp(p *corev1.SeccompProfile, privileged bool) *runtimeapi.SecurityProfile {
	if p == nil {
		if m.cfg.SeccompDefault && !privileged {
			return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
		}
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
	}
	switch p.Type {
	case corev1.SeccompProfileTypeRuntimeDefault:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	case corev1.SeccompProfileTypeLocalhost:
		ref := ""
		if p.LocalhostProfile != nil {
			ref = filepath.Join(m.cfg.RootDir, "seccomp", *p.LocalhostProfile)
		}
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: ref}
	}
	return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
}

// checkSeccompPath refuses a Localhost profile path that would leave the
// node's seccomp directory.
func checkSeccompPath(p *corev1.SeccompProfile) error {
	if p == nil || p.Type != corev1.SeccompProfileTypeLocalhost {
		return nil
	}
	if p.LocalhostProfile == nil || *p.LocalhostProfile == "" {
		return fmt.Errorf("seccompProfile: Localhost needs localhostProfile")
	}
	if err := volumes.CheckSubPath(*p.LocalhostProfile); err != nil {
		return fmt.Errorf("seccompProfile.localhostProfile %q must be a relative path without \"..\"", *p.LocalhostProfile)
	}
	return nil
}

// checkRunAsNonRoot refuses a container that must not run as root but
// would: its runAsUser is 0, or it has none and the image's user is root
// or a name that cannot be checked (the upstream kubelet's messages).
func checkRunAsNonRoot(pod *corev1.Pod, c *corev1.Container, imageUID *int64, imageUser string) error {
	eff := effectiveSecurityContext(pod, c)
	if eff.RunAsNonRoot == nil || !*eff.RunAsNonRoot {
		return nil
	}
	if eff.RunAsUser != nil {
		if *eff.RunAsUser == 0 {
			return fmt.Errorf("container's runAsUser breaks non-root policy (pod: %q, container: %s)", pod.Namespace+"/"+pod.Name, c.Name)
		}
		return nil
	}
	switch {
	case imageUID != nil && *imageUID == 0, imageUID == nil && imageUser == "":
		return fmt.Errorf("container has runAsNonRoot and image will run as root (pod: %q, container: %s)", pod.Namespace+"/"+pod.Name, c.Name)
	case imageUID == nil:
		return fmt.Errorf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root (pod: %q, container: %s)", imageUser, pod.Namespace+"/"+pod.Name, c.Name)
	}
	return nil
}

func int64Value(v *int64) *runtimeapi.Int64Value {
	if v == nil {
		return nil
	}
	return &runtimeapi.Int64Value{Value: *v}
}

func selinux(o *corev1.SELinuxOptions) *runtimeapi.SELinuxOption {
	if o == nil {
		return nil
	}
	return &runtimeapi.SELinuxOption{User: o.User, Role: o.Role, Type: o.Type, Level: o.Level}
}
