package pods

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const runtimeScheme = "containerd://"

func ts(ns int64) metav1.Time {
	if ns == 0 {
		return metav1.Time{}
	}
	return metav1.NewTime(time.Unix(0, ns).Truncate(time.Second))
}

func terminated(c *runtimeapi.ContainerStatus, spec *corev1.Container) *corev1.ContainerStateTerminated {
	return &corev1.ContainerStateTerminated{ExitCode: c.ExitCode, Reason: c.Reason, Message: terminationMessage(c, spec),
		StartedAt: ts(c.StartedAt), FinishedAt: ts(c.FinishedAt), ContainerID: runtimeScheme + c.Id}
}

// containerStatus reports one container from its newest and previous
// runtime instances.
func (w *worker) containerStatus(pod *corev1.Pod, c *corev1.Container, cur, prev *runtimeapi.ContainerStatus) (corev1.ContainerStatus, bool) {
	cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image}
	running := false
	if prev != nil {
		cs.LastTerminationState.Terminated = terminated(prev, c)
	}
	if cur == nil {
		wt := w.waiting[c.Name]
		if wt.reason == "" {
			wt.reason = defaultWaitingReason(pod)
		}
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: wt.reason, Message: wt.message}
		w.reportResources(&cs, c, nil)
		return cs, false
	}
	cs.ContainerID = runtimeScheme + cur.Id
	cs.ImageID = cur.ImageRef
	w.reportResources(&cs, c, cur)
	cs.RestartCount = int32(cur.Metadata.Attempt)
	switch cur.State {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: ts(cur.StartedAt)}
		started := w.m.probes.isStarted(c, cur)
		cs.Started = ptrBool(started)
		cs.Ready = started && w.m.probes.isReady(pod.UID, c)
		running = true
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		if wt, ok := w.waiting[c.Name]; ok && wt.reason == "CrashLoopBackOff" && shouldRestart(restartPolicyOf(pod, c), cur.ExitCode) {
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: wt.reason, Message: wt.message}
			cs.LastTerminationState.Terminated = terminated(cur, c)
		} else {
			cs.State.Terminated = terminated(cur, c)
		}
		cs.Started = ptrBool(false)
	default:
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
	}
	return cs, running
}

func ptrBool(b bool) *bool { return &b }

// defaultWaitingReason is what a container not yet created waits for:
// as upstream reports it, PodInitializing in every pod that has init
// containers (users and the InitContainer conformance tests read it as
// "held back by the init phase"), else ContainerCreating.
func defaultWaitingReason(pod *corev1.Pod) string {
	if len(pod.Spec.InitContainers) > 0 {
		return "PodInitializing"
	}
	return "ContainerCreating"
}

// status computes the pod's status from the runtime; ips are the ready
// sandbox's addresses.
func (w *worker) status(pod *corev1.Pod, rp *runtimePod, ips []string) *corev1.PodStatus {
	// Read before the containers' readiness is: a status computed with
	// every probe's first result in hand is settled.
	w.computedSettled = w.m.probes.readinessKnown(w.uid)
	st := &corev1.PodStatus{QOSClass: QOSClass(pod), StartTime: &w.startTime}
	w.pruneResources(rp)
	if ip := w.m.hostIP(); ip != "" {
		st.HostIP, st.HostIPs = ip, []corev1.HostIP{{IP: ip}}
	}
	sb := rp.readySandbox()
	sbID := ""
	if sb != nil {
		sbID = sb.Id
		for _, ip := range ips {
			st.PodIPs = append(st.PodIPs, corev1.PodIP{IP: ip})
		}
		if len(st.PodIPs) > 0 {
			st.PodIP = st.PodIPs[0].IP
		}
	}
	var incomplete, unready []string // init containers not done; containers not ready
	past := sb != nil && mainStarted(pod, rp, sbID)
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cur, prev := rp.latest(c.Name, sbID)
		cs, _ := w.containerStatus(pod, c, cur, prev)
		if isSidecar(c) {
			// A sidecar counts as initialized once started; its readiness
			// is part of the pod's.
			if !cs.Ready {
				unready = append(unready, c.Name)
			}
			if !past && !w.m.probes.isStarted(c, cur) {
				incomplete = append(incomplete, c.Name)
			}
		} else {
			cs.Ready = cur != nil && cur.State == runtimeapi.ContainerState_CONTAINER_EXITED && cur.ExitCode == 0
			if !past && !cs.Ready {
				incomplete = append(incomplete, c.Name)
			}
		}
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
	}
	var nRunning, nSucceeded, nFailed, nWaiting int
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		cur, prev := rp.latest(c.Name, sbID)
		cs, running := w.containerStatus(pod, c, cur, prev)
		if !cs.Ready {
			unready = append(unready, c.Name)
		}
		switch {
		case running:
			nRunning++
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
			nSucceeded++
		case cs.State.Terminated != nil:
			nFailed++
		default:
			nWaiting++
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	for _, c := range ephemeralContainers(pod) {
		cur, prev := rp.latest(c.Name, sbID)
		cs, _ := w.containerStatus(pod, &c, cur, prev)
		st.EphemeralContainerStatuses = append(st.EphemeralContainerStatuses, cs)
	}
	n := len(pod.Spec.Containers)
	initialized := len(incomplete) == 0
	switch {
	case !initialized || sb == nil && nSucceeded+nFailed < n:
		st.Phase = corev1.PodPending
		if initFailed(st.InitContainerStatuses, pod.Spec.RestartPolicy) {
			st.Phase = corev1.PodFailed
		}
	case nRunning > 0:
		st.Phase = corev1.PodRunning
	case nSucceeded+nFailed == n && pod.Spec.RestartPolicy == corev1.RestartPolicyAlways:
		// Every container is restarting (upstream's getPhase): a pod
		// that always restarts is never Succeeded, whatever its exit codes.
		st.Phase = corev1.PodRunning
	case nSucceeded == n:
		st.Phase = corev1.PodSucceeded
	case nSucceeded+nFailed == n && pod.Spec.RestartPolicy == corev1.RestartPolicyNever:
		st.Phase = corev1.PodFailed
	case nSucceeded+nFailed+nWaiting == n && nSucceeded+nFailed > 0:
		st.Phase = corev1.PodRunning // restarting
	default:
		st.Phase = corev1.PodPending
	}
	if w.deleting && st.Phase != corev1.PodSucceeded && st.Phase != corev1.PodFailed {
		st.Phase = corev1.PodFailed
		if nSucceeded == n {
			st.Phase = corev1.PodSucceeded
		}
	}
	// The generation this status answers (PodObservedGenerationTracking,
	// GA in 1.35): clients wait on it to know an update reached the node.
	st.ObservedGeneration = pod.Generation
	st.Conditions = podConditions(pod, st.Phase, sb != nil, incomplete, unready)
	st.Conditions = append(st.Conditions, foreignConditions(pod.Status.Conditions, st.Conditions)...)
	return st
}

// kubeletConditions are the pod conditions the kubelet writes; others
// (readiness gates, DisruptionTarget) belong to other writers and are
// kept as they are.
var kubeletConditions = map[corev1.PodConditionType]bool{corev1.PodReadyToStartContainers: true, corev1.PodInitialized: true,
	corev1.ContainersReady: true, corev1.PodReady: true, corev1.PodScheduled: true}

func foreignConditions(from, have []corev1.PodCondition) []corev1.PodCondition {
	var out []corev1.PodCondition
	for _, c := range from {
		if kubeletConditions[c.Type] || slices.ContainsFunc(have, func(h corev1.PodCondition) bool { return h.Type == c.Type }) {
			continue
		}
		out = append(out, c)
	}
	return out
}

// readinessGates reports whether every readiness gate's condition is
// True, and names the first that is not (the upstream message).
func readinessGates(pod *corev1.Pod) (bool, string) {
	for _, g := range pod.Spec.ReadinessGates {
		status := corev1.ConditionStatus("")
		for _, c := range pod.Status.Conditions {
			if c.Type == g.ConditionType {
				status = c.Status
			}
		}
		if status != corev1.ConditionTrue {
			if status == "" {
				return false, fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", g.ConditionType)
			}
			return false, fmt.Sprintf("the status of pod readiness gate %q is not \"True\", but %v", g.ConditionType, status)
		}
	}
	return true, ""
}

func initFailed(statuses []corev1.ContainerStatus, policy corev1.RestartPolicy) bool {
	if policy != corev1.RestartPolicyNever {
		return false
	}
	for _, s := range statuses {
		if s.State.Terminated != nil && s.State.Terminated.ExitCode != 0 {
			return true
		}
	}
	return false
}

// writeStatus patches the pod's status when it changed; condition
// transition times move only when a condition's status does.
func (w *worker) writeStatus(ctx context.Context, pod *corev1.Pod, st *corev1.PodStatus) {
	now := metav1.Now()
	for i := range st.Conditions {
		if !kubeletConditions[st.Conditions[i].Type] {
			continue // another writer's, with its own times
		}
		st.Conditions[i].LastTransitionTime = now
		if w.lastStatus != nil {
			for _, o := range w.lastStatus.Conditions {
				if o.Type == st.Conditions[i].Type && o.Status == st.Conditions[i].Status {
					st.Conditions[i].LastTransitionTime = o.LastTransitionTime
				}
			}
		}
	}
	if w.lastStatus != nil && reflect.DeepEqual(w.lastStatus, st) {
		w.markSettled()
		return
	}
	if w.m.client == nil {
		w.setLast(st)
		return
	}
	pods := w.m.client.CoreV1().Pods(pod.Namespace)
	for range 3 {
		cur, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return // a static pod's mirror not made yet: next sync
		}
		// An API pod writes to itself; a static pod to its mirror.
		if err == nil && !(cur.UID == pod.UID || IsStatic(pod) && cur.Annotations[AnnotationMirror] == pod.Annotations[AnnotationHash]) {
			return
		}
		if err != nil {
			w.m.log.Warn("Reading a pod for its status failed; retrying", "pod", pod.Namespace+"/"+pod.Name, "error", err)
			return
		}
		cur.Status.Conditions = slices.Concat(st.Conditions, foreignConditions(cur.Status.Conditions, st.Conditions))
		conds := cur.Status.Conditions
		cur.Status = *st
		cur.Status.Conditions = conds
		if _, err = pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err == nil {
			w.setLast(st)
			return
		}
		if !apierrors.IsConflict(err) {
			w.m.log.Warn("Writing a pod's status failed; retrying", "pod", pod.Namespace+"/"+pod.Name, "error", err)
			return
		}
	}
}

// setLast records the status written; the kubelet API reads a copy.
func (w *worker) setLast(st *corev1.PodStatus) {
	w.lastStatus = st
	cp := st.DeepCopy()
	w.mu.Lock()
	w.published = cp
	w.mu.Unlock()
	w.markSettled()
	w.m.changed()
}

// markSettled records whether the status published was computed with
// every readiness probe's first result (Manager.Synced waits for that).
func (w *worker) markSettled() {
	w.mu.Lock()
	changed := w.settled != w.computedSettled
	w.settled = w.computedSettled
	w.mu.Unlock()
	if changed {
		w.m.changed()
	}
}

// isSettled: a status was published, computed with every readiness
// probe's first result.
func (w *worker) isSettled() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.published != nil && w.settled
}

// statusSnapshot is the last status written, for other goroutines.
func (w *worker) statusSnapshot() *corev1.PodStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.published
}
