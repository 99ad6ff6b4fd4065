package pods

import (
	"context"
	"fmt"
	"runtime/debug"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hivelet/hivelet/kubelet-lite/cri"
)

// Reasons of pods the node refuses to run, in their status and events.
const (
	reasonInvalidPod = "InvalidPod"
	reasonFailedSync = "FailedSync"
)

// admit decides whether the node runs a pod it has not started yet: one
// whose names or paths could reach outside its own directories, or that
// asks for sysctls the node does not allow, is refused with a reason.
func (m *Manager) admit(pod *corev1.Pod) (string, error) {
	if err := validatePod(pod); err != nil {
		return reasonInvalidPod, err
	}
	if err := checkSysctls(pod, m.cfg.AllowedUnsafeSysctls); err != nil {
		return SysctlForbidden, err
	}
	return "", nil
}

// reject fails a pod the node will not run, as the upstream kubelet
// rejects one at admission: phase Failed, the reason and an event.
func (w *worker) reject(ctx context.Context, pod *corev1.Pod, reason string, err error) {
	msg := "Pod was rejected: " + err.Error()
	if !w.reported[reason+msg] {
		w.reported[reason+msg] = true
		w.m.log.Warn("Pod rejected", "pod", pod.Namespace+"/"+pod.Name, "reason", reason, "error", err)
		w.m.event(pod, corev1.EventTypeWarning, reason, msg)
	}
	st := &corev1.PodStatus{Phase: corev1.PodFailed, Reason: reason, Message: msg, QOSClass: QOSClass(pod), StartTime: &w.startTime}
	if ip := w.m.hostIP(); ip != "" {
		st.HostIP, st.HostIPs = ip, []corev1.HostIP{{IP: ip}}
	}
	w.writeStatus(ctx, pod, st)
}

// safeSync is sync that survives a panic: one pod whose spec trips a bug
// must not take the kubelet, and every other pod, down with it. The
// panic becomes a FailedSync event, a waiting reason on the pod's
// containers and an error log with the stack; the worker tries again at
// its next wake.
func (w *worker) safeSync(ctx context.Context) (gone bool) {
	defer func() {
		if r := recover(); r != nil {
			gone = false
			w.recovered(ctx, r, debug.Stack())
		}
	}()
	return w.sync(ctx)
}

func (w *worker) recovered(ctx context.Context, r any, stack []byte) {
	w.mu.Lock()
	pod := w.pod
	w.mu.Unlock()
	msg := fmt.Sprintf("kubelet-lite internal error syncing this pod: %v", r)
	w.m.log.Error("Pod sync panicked; the pod is retried, the kubelet goes on", "pod", pod.Namespace+"/"+pod.Name, "panic", fmt.Sprint(r), "stack", string(stack))
	defer func() {
		if r2 := recover(); r2 != nil {
			w.m.log.Error("Reporting a pod sync panic panicked too", "pod", pod.Namespace+"/"+pod.Name, "panic", fmt.Sprint(r2))
		}
	}()
	if !w.reported[reasonFailedSync+msg] {
		w.reported[reasonFailedSync+msg] = true
		w.m.event(pod, corev1.EventTypeWarning, reasonFailedSync, msg)
	}
	for _, c := range allContainers(pod) {
		w.waiting[c.Name] = waiting{"CreateContainerError", msg}
	}
	rp, err := w.m.runtimePod(ctx, w.uid)
	if err != nil {
		return
	}
	w.writeStatus(ctx, pod, w.status(pod, rp, nil))
}

// checkImageUser refuses a container with runAsNonRoot whose image would
// run it as root (the image's user is only known once it is pulled).
func (m *Manager) checkImageUser(ctx context.Context, pod *corev1.Pod, c *corev1.Container) error {
	eff := effectiveSecurityContext(pod, c)
	if eff.RunAsNonRoot == nil || !*eff.RunAsNonRoot || eff.RunAsUser != nil {
		return checkRunAsNonRoot(pod, c, nil, "")
	}
	ctx, cancel := cri.Ctx(ctx)
	defer cancel()
	st, err := m.rt.Images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: c.Image}})
	if err != nil || st.Image == nil {
		return fmt.Errorf("image status %s: %v", c.Image, err)
	}
	var uid *int64
	if st.Image.Uid != nil {
		uid = &st.Image.Uid.Value
	}
	return checkRunAsNonRoot(pod, c, uid, st.Image.Username)
}

// reasonNodePorts is the upstream kubelet's reason (its NodePorts
// predicate) for a pod whose hostPorts another pod on the node holds.
const reasonNodePorts = "NodePorts"

// admitWorker admits w's pod as the upstream kubelet's admission does:
// valid, sysctls allowed, the node's labels and taints, host ports, and
// resources against allocatable. One admission at a time, so two pods
// asking for the same port (or the last CPU) cannot both pass.
func (m *Manager) admitWorker(w *worker, pod *corev1.Pod) (string, error) {
	m.admitMu.Lock()
	defer m.admitMu.Unlock()
	if reason, err := m.admit(pod); err != nil {
		return reason, err
	}
	if reason, err := m.admitOnNode(pod); err != nil {
		return reason, err
	}
	if reason, err := m.admitUnderPressure(pod); err != nil {
		return reason, err
	}
	others := m.admittedPods(w)
	if other := hostPortHolder(others, pod); other != "" {
		return reasonNodePorts, fmt.Errorf("Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports (held by pod %s)", other)
	}
	if !IsCritical(pod) && m.cfg.Allocatable != nil {
		if reason, err := fits(others, pod, m.allocatable()); err != nil {
			return reason, err
		}
	}
	w.admitted.Store(true)
	return "", nil
}

// admittedPods are the pods admitted before pod, other than w's, that
// have not finished: what holds the node's ports and resources.
func (m *Manager) admittedPods(w *worker) []*corev1.Pod {
	m.mu.Lock()
	others := make([]*worker, 0, len(m.workers))
	for _, o := range m.workers {
		if o != w && o.admitted.Load() {
			others = append(others, o)
		}
	}
	m.mu.Unlock()
	var pods []*corev1.Pod
	for _, o := range others {
		o.mu.Lock()
		op, st, removed := o.pod, o.published, o.removed
		o.mu.Unlock()
		if removed || op == nil || st != nil && (st.Phase == corev1.PodSucceeded || st.Phase == corev1.PodFailed) {
			continue
		}
		pods = append(pods, op)
	}
	return pods
}

// hostPortHolder names a pod among others whose hostPorts meet pod's:
// same protocol and port, and the same host IP or either on every
// address (the scheduler's NodePorts rule).
func hostPortHolder(others []*corev1.Pod, pod *corev1.Pod) string {
	want := hostPorts(pod)
	if len(want) == 0 {
		return ""
	}
	for _, op := range others {
		for _, a := range hostPorts(op) {
			for _, b := range want {
				if a.Protocol == b.Protocol && a.HostPort == b.HostPort && (a.HostIP == b.HostIP || anyAddr(a.HostIP) || anyAddr(b.HostIP)) {
					return op.Namespace + "/" + op.Name
				}
			}
		}
	}
	return ""
}

func hostPorts(pod *corev1.Pod) []corev1.ContainerPort {
	var out []corev1.ContainerPort
	for _, c := range allContainers(pod) {
		for _, p := range c.Ports {
			if p.HostPort > 0 {
				if p.Protocol == "" {
					p.Protocol = corev1.ProtocolTCP
				}
				out = append(out, p)
			}
		}
	}
	return out
}

func anyAddr(ip string) bool { return ip == "" || ip == "0.0.0.0" || ip == "::" }
