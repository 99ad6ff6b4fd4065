package pods

import (
	"context"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// reasonDeadlineExceeded is the upstream kubelet's reason for a pod that
// ran past its activeDeadlineSeconds.
const reasonDeadlineExceeded = "DeadlineExceeded"

// deadlinePassed reports a running pod past its activeDeadlineSeconds,
// counted from its start time, and otherwise arranges a wake-up for the
// moment it will be.
func (w *worker) deadlinePassed(pod *corev1.Pod) bool {
	d := pod.Spec.ActiveDeadlineSeconds
	if d == nil || w.terminal() {
		return false
	}
	left := time.Until(w.startTime.Add(secondsDur(*d)))
	if left <= 0 {
		return true
	}
	if w.deadline == nil {
		w.deadline = time.AfterFunc(left, w.kick)
	} else {
		w.deadline.Reset(left) // the deadline may have been shortened
	}
	return false
}

// failDeadline stops the pod's containers (within the grace period) and
// fails the pod for good with DeadlineExceeded, as upstream.
func (w *worker) failDeadline(ctx context.Context, pod *corev1.Pod) {
	w.m.log.Info("Pod ran past its activeDeadlineSeconds; stopping it", "pod", pod.Namespace+"/"+pod.Name)
	w.fail(ctx, pod, corev1.EventTypeNormal, reasonDeadlineExceeded, "Pod was active on the node longer than the specified deadline", gracePeriod(pod), nil)
}

// fail stops the pod's containers within grace seconds and fails the
// pod for good with reason and message, told in an event of type typ;
// cond, when set, is added to its conditions.
func (w *worker) fail(ctx context.Context, pod *corev1.Pod, typ, reason, message string, grace int64, cond *corev1.PodCondition) {
	w.m.event(pod, typ, reason, message)
	rp, err := w.m.runtimePod(ctx, w.uid)
	if err != nil {
		return
	}
	w.m.probes.stopPod(w.uid, rp)
	var wg sync.WaitGroup
	for _, c := range rp.containers {
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			wg.Go(func() { w.m.stopContainer(ctx, pod, c, grace) })
		}
	}
	wg.Wait()
	if rp, err = w.m.runtimePod(ctx, w.uid); err != nil {
		return
	}
	var ips []string
	if sb := rp.readySandbox(); sb != nil {
		ips = w.m.podIPs(ctx, pod, sb.Id)
	}
	st := w.status(pod, rp, ips)
	st.Phase, st.Reason, st.Message = corev1.PodFailed, reason, message
	if cond != nil {
		st.Conditions = append(slices.DeleteFunc(st.Conditions, func(c corev1.PodCondition) bool { return c.Type == cond.Type }), *cond)
	}
	// Scratch space first: the eviction manager looks again once the
	// pod is finished, and must then see what it freed.
	w.tornDown = w.m.teardownFinished(ctx, pod)
	w.writeStatus(ctx, pod, st)
}
