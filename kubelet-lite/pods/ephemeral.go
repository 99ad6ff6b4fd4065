package pods

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ephemeralContainers are the pod's ephemeral containers (`kubectl
// debug`) as containers: the same fields, and the upstream kubelet
// treats them so.
func ephemeralContainers(pod *corev1.Pod) []corev1.Container {
	out := make([]corev1.Container, len(pod.Spec.EphemeralContainers))
	for i := range pod.Spec.EphemeralContainers {
		out[i] = corev1.Container(pod.Spec.EphemeralContainers[i].EphemeralContainerCommon)
	}
	return out
}

// startEphemeral starts each ephemeral container that never ran in this
// sandbox, once: they are never restarted. One with a target container
// joins that container's PID namespace, so a debugger sees its
// processes.
func (w *worker) startEphemeral(ctx context.Context, pod *corev1.Pod, rp *runtimePod, sb string,
	sbCfg *runtimeapi.PodSandboxConfig, podIPs []string, vols map[string]podVolume) {
	cs := ephemeralContainers(pod)
	for i := range cs {
		c := &cs[i]
		if cur, _ := rp.latest(c.Name, sb); cur != nil {
			continue
		}
		var adjust []func(*runtimeapi.ContainerConfig)
		if target := pod.Spec.EphemeralContainers[i].TargetContainerName; target != "" {
			tc, _ := rp.latest(target, sb)
			if tc == nil || tc.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
				w.waiting[c.Name] = waiting{"ContainerCreating", "waiting for target container " + target + " to run"}
				continue
			}
			adjust = append(adjust, func(cfg *runtimeapi.ContainerConfig) {
				if ns := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions(); ns != nil && ns.Pid == runtimeapi.NamespaceMode_CONTAINER {
					ns.Pid, ns.TargetId = runtimeapi.NamespaceMode_TARGET, tc.Id
				}
			})
		}
		w.start(ctx, pod, c, 0, sb, sbCfg, podIPs, vols, adjust...)
	}
}

// containerType is the upstream metrics label of a container's kind.
func containerType(pod *corev1.Pod, name string) string {
	for _, c := range pod.Spec.InitContainers {
		if c.Name == name {
			return "init_container"
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		if c.Name == name {
			return "ephemeral_container"
		}
	}
	return "container"
}
