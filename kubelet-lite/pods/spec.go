package pods

import (
	"context"
	"fmt"

	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Labels kubelet-lite puts on sandboxes and containers, the upstream
// kubelet's names, so a restarted kubelet (or crictl) finds what is whose.
const (
	LabelPodUID       = "io.kubernetes.pod.uid"
	LabelPodName      = "io.kubernetes.pod.name"
	LabelPodNamespace = "io.kubernetes.pod.namespace"
	LabelContainer    = "io.kubernetes.container.name"
	// annotationHash pinned a container to the whole spec it was created
	// from; annotationHashNoResources pins it to the spec without its
	// resources (a resize is not a spec change), as the upstream kubelet
	// once called it.
	annotationHash            = "io.kubernetes.container.hash"
	annotationHashNoResources = "io.kubernetes.container.hashWithoutResources"
)

// QOSClass computes the pod's QoS class as Kubernetes does: Guaranteed
// when every container has CPU and memory limits equal to its requests,
// BestEffort when none has any request or limit, Burstable otherwise.
func QOSClass(pod *corev1.Pod) corev1.PodQOSClass {
	all := append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
	any, guaranteed := false, true
	for _, c := range all {
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, hasReq := c.Resources.Requests[r]
			lim, hasLim := c.Resources.Limits[r]
			if hasReq && !req.IsZero() || hasLim && !lim.IsZero() {
				any = true
			}
			if !hasLim || lim.IsZero() {
				guaranteed = false
				continue
			}
			if hasReq && req.Cmp(lim) != 0 {
				guaranteed = false
			}
		}
	}
	switch {
	case !any:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

func podLabels(pod *corev1.Pod) map[string]string {
	return map[string]string{LabelPodUID: string(pod.UID), LabelPodName: pod.Name, LabelPodNamespace: pod.Namespace}
}

// SandboxConfig is the CRI sandbox of a pod.
func (m *Manager) SandboxConfig(pod *corev1.Pod, attempt uint32) (*runtimeapi.PodSandboxConfig, error) {
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: pod.Name, Namespace: pod.Namespace, Uid: string(pod.UID), Attempt: attempt},
		LogDirectory: m.logDir(pod),
		Labels:       podLabels(pod),
		Annotations:  pod.Annotations,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent:    CgroupParent(m.cfg.CgroupDriver, m.cfg.CgroupRoot, pod),
			SecurityContext: m.sandboxSecurity(pod),
			Sysctls:         sandboxSysctls(pod),
		},
	}
	// A pod on the node's network shares the node's UTS namespace too: it
	// keeps the node's hostname (the runtime refuses to set one there).
	if !pod.Spec.HostNetwork {
		host, err := m.sandboxHostname(pod)
		if err != nil {
			return nil, err
		}
		cfg.Hostname = host
	}
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort == 0 {
				continue
			}
			cfg.PortMappings = append(cfg.PortMappings, &runtimeapi.PortMapping{
				Protocol: protocol(p.Protocol), ContainerPort: p.ContainerPort, HostPort: p.HostPort, HostIp: p.HostIP})
		}
	}
	cfg.DnsConfig, _ = m.podDNS(pod)
	return cfg, nil
}

func protocol(p corev1.Protocol) runtimeapi.Protocol {
	switch p {
	case corev1.ProtocolUDP:
		return runtimeapi.Protocol_UDP
	case corev1.ProtocolSCTP:
		return runtimeapi.Protocol_SCTP
	}
	return runtimeapi.Protocol_TCP
}

// logDir is where the runtime writes the pod's container logs, the
// layout log collectors expect: <pod-logs-dir>/<ns>_<pod>_<uid>/<container>/<n>.log.
func (m *Manager) logDir(pod *corev1.Pod) string {
	return filepath.Join(m.podLogsDir(), pod.Namespace+"_"+pod.Name+"_"+string(pod.UID))
}

// ContainerConfig is the CRI container for spec c of pod; env references
// to ConfigMaps and Secrets are read through the API. podIPs are the
// sandbox's addresses.
func (m *Manager) ContainerConfig(ctx context.Context, pod *corev1.Pod, c *corev1.Container, attempt uint32, podIPs []string, vols map[string]podVolume) (*runtimeapi.ContainerConfig, error) {
	env, err := m.resolveEnv(ctx, pod, c, podIPs)
	if err != nil {
		return nil, err
	}
	vars := make(map[string]string, len(env))
	for _, e := range env {
		vars[e.Key] = string(e.Value)
	}
	mnts, err := m.mounts(pod, c, vols, vars)
	if err != nil {
		return nil, err
	}
	for _, extra := range []func() (*runtimeapi.Mount, error){
		func() (*runtimeapi.Mount, error) { return m.hostsMount(pod, c, podIPs) },
		func() (*runtimeapi.Mount, error) { return m.terminationMount(pod, c) },
	} {
		mnt, err := extra()
		if err != nil {
			return nil, err
		}
		if mnt != nil {
			mnts = append(mnts, mnt)
		}
	}
	res := linuxResources(c)
	cfg := &runtimeapi.ContainerConfig{
		Metadata:    &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: attempt},
		Image:       &runtimeapi.ImageSpec{Image: c.Image},
		WorkingDir:  c.WorkingDir,
		LogPath:     filepath.Join(c.Name, strconv.Itoa(int(attempt))+".log"),
		Labels:      map[string]string{LabelPodUID: string(pod.UID), LabelPodName: pod.Name, LabelPodNamespace: pod.Namespace, LabelContainer: c.Name},
		Annotations: map[string]string{annotationHashNoResources: specHash(c), annotationResources: resourcesAnnotation(c)},
		Linux:       &runtimeapi.LinuxContainerConfig{Resources: res, SecurityContext: m.containerSecurity(pod, c)},
		Stdin:       c.Stdin,
		StdinOnce:   c.StdinOnce,
		Tty:         c.TTY,
		Mounts:      mnts,
		Envs:        env,
	}
	cfg.Command = expandAll(c.Command, vars)
	cfg.Args = expandAll(c.Args, vars)
	if err := m.addDevices(ctx, pod, c, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// fieldValue is a fieldRef for the environment: the pod's metadata, the
// node it runs on and the addresses of both.
func (m *Manager) fieldValue(pod *corev1.Pod, field string, podIPs []string) (string, error) {
	switch field {
	case "spec.nodeName":
		return m.cfg.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP":
		return firstOr(podIPs), nil
	case "status.podIPs":
		return strings.Join(podIPs, ","), nil
	case "status.hostIP":
		return m.hostIP(), nil
	case "status.hostIPs":
		ips := make([]string, len(m.cfg.NodeIPs))
		for i, ip := range m.cfg.NodeIPs {
			ips[i] = ip.String()
		}
		return strings.Join(ips, ","), nil
	}
	return podFieldValue(pod, field)
}

// podFieldValue is one of the pod's own fields, for the environment and
// for volumes: name, namespace, uid, one label or one annotation.
func podFieldValue(pod *corev1.Pod, field string) (string, error) {
	switch field {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	}
	for prefix, m := range map[string]map[string]string{"metadata.labels": pod.Labels, "metadata.annotations": pod.Annotations} {
		if rest, ok := strings.CutPrefix(field, prefix+"['"); ok {
			if key, ok := strings.CutSuffix(rest, "']"); ok {
				return m[key], nil
			}
		}
	}
	return "", fmt.Errorf("fieldRef %q is not supported", field)
}

func (m *Manager) configMapKey(ctx context.Context, ns string, ref *corev1.ConfigMapKeySelector) (string, error) {
	return m.keyOf(ctx, "configmap", ns, ref.Name, ref.Key, ref.Optional, func() (map[string]string, error) {
		cm, err := m.client.CoreV1().ConfigMaps(ns).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return cm.Data, nil
	})
}

func (m *Manager) secretKey(ctx context.Context, ns string, ref *corev1.SecretKeySelector) (string, error) {
	return m.keyOf(ctx, "secret", ns, ref.Name, ref.Key, ref.Optional, func() (map[string]string, error) {
		s, err := m.client.CoreV1().Secrets(ns).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		data := make(map[string]string, len(s.Data))
		for k, v := range s.Data {
			data[k] = string(v)
		}
		return data, nil
	})
}

// keyOf reads one key of a ConfigMap or Secret; optional references to
// a missing object or key read as empty, as Kubernetes has it.
func (m *Manager) keyOf(_ context.Context, kind, ns, name, key string, optional *bool, get func() (map[string]string, error)) (string, error) {
	if m.client == nil {
		return "", fmt.Errorf("%s %s: needs an API server", kind, name)
	}
	opt := optional != nil && *optional
	data, err := get()
	if err != nil {
		if opt {
			return "", nil
		}
		return "", fmt.Errorf("%s %s/%s: %w", kind, ns, name, err)
	}
	v, ok := data[key]
	if !ok && !opt {
		return "", fmt.Errorf("%s %s/%s has no key %q", kind, ns, name, key)
	}
	return v, nil
}

var varRef = regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)`)

// expand replaces $(NAME) with defined variables, leaves undefined ones
// as written and turns $$ into $, as Kubernetes does.
func expand(s string, vars map[string]string) string {
	return expandWith(s, func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
}

func expandWith(s string, lookup func(string) (string, bool)) string {
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		if v, ok := lookup(m[2 : len(m)-1]); ok {
			return v
		}
		return m
	})
}

func expandAll(in []string, vars map[string]string) []string {
	if in == nil {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = expand(s, vars)
	}
	return out
}

// linuxResources turns requests and limits into cgroup settings.
func linuxResources(c *corev1.Container) *runtimeapi.LinuxContainerResources {
	r := &runtimeapi.LinuxContainerResources{CpuShares: 2}
	if req, ok := c.Resources.Requests[corev1.ResourceCPU]; ok {
		r.CpuShares = max(2, req.MilliValue()*1024/1000)
	} else if lim, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
		r.CpuShares = max(2, lim.MilliValue()*1024/1000)
	}
	if lim, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
		r.CpuPeriod = 100000
		r.CpuQuota = max(1000, lim.MilliValue()*100000/1000)
	}
	if lim, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
		r.MemoryLimitInBytes = lim.Value()
	}
	return r
}

func sortStrings(s []string) { slices.Sort(s) }
