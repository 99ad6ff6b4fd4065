package pods

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// safeSysctls are the namespaced sysctls every pod may set, the upstream
// kubelet's safe set: they cannot affect other pods or the node.
var safeSysctls = map[string]bool{
	"kernel.shm_rmid_forced":              true,
	"net.ipv4.ip_local_port_range":        true,
	"net.ipv4.tcp_syncookies":             true,
	"net.ipv4.ping_group_range":           true,
	"net.ipv4.ip_unprivileged_port_start": true,
	"net.ipv4.ip_local_reserved_ports":    true,
	"net.ipv4.tcp_keepalive_time":         true,
	"net.ipv4.tcp_fin_timeout":            true,
	"net.ipv4.tcp_keepalive_intvl":        true,
	"net.ipv4.tcp_keepalive_probes":       true,
	"net.ipv4.tcp_rmem":                   true,
	"net.ipv4.tcp_wmem":                   true,
}

// sysctlNamespace says which pod namespace a sysctl belongs to; "" for
// one that is not namespaced and so would change the node.
func sysctlNamespace(name string) string {
	switch {
	case strings.HasPrefix(name, "net."):
		return "net"
	case name == "kernel.sem", strings.HasPrefix(name, "kernel.shm"), strings.HasPrefix(name, "kernel.msg"), strings.HasPrefix(name, "fs.mqueue."):
		return "ipc"
	}
	return ""
}

// SysctlForbidden is the reason of a pod refused for its sysctls, as the
// upstream kubelet names it.
const SysctlForbidden = "SysctlForbidden"

// checkSysctls refuses a sysctl outside the safe set and the node's
// --allowed-unsafe-sysctls (exact names or prefixes ending in "*"), one
// that is not namespaced, and one of a namespace the pod shares with
// the node.
func checkSysctls(pod *corev1.Pod, allowed []string) error {
	if pod.Spec.SecurityContext == nil {
		return nil
	}
	for _, s := range pod.Spec.SecurityContext.Sysctls {
		name := strings.ReplaceAll(s.Name, "/", ".")
		ns := sysctlNamespace(name)
		switch {
		case ns == "":
			return fmt.Errorf("forbidden sysctl: %q is not namespaced", s.Name)
		case ns == "net" && pod.Spec.HostNetwork:
			return fmt.Errorf("forbidden sysctl: %q not allowed with host net enabled", s.Name)
		case ns == "ipc" && pod.Spec.HostIPC:
			return fmt.Errorf("forbidden sysctl: %q not allowed with host ipc enabled", s.Name)
		case !safeSysctls[name] && !sysctlAllowed(name, allowed):
			return fmt.Errorf("forbidden sysctl: %q not allowlisted", s.Name)
		}
	}
	return nil
}

func sysctlAllowed(name string, allowed []string) bool {
	for _, a := range allowed {
		a = strings.ReplaceAll(a, "/", ".")
		if a == name || strings.HasSuffix(a, "*") && strings.HasPrefix(name, strings.TrimSuffix(a, "*")) {
			return true
		}
	}
	return false
}

// sandboxSysctls hands the pod's sysctls to the runtime.
func sandboxSysctls(pod *corev1.Pod) map[string]string {
	if pod.Spec.SecurityContext == nil || len(pod.Spec.SecurityContext.Sysctls) == 0 {
		return nil
	}
	out := map[string]string{}
	for _, s := range pod.Spec.SecurityContext.Sysctls {
		out[strings.ReplaceAll(s.Name, "/", ".")] = s.Value
	}
	return out
}
