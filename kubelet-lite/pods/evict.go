package pods

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// reasonEvicted is the reason of a pod the node evicted, upstream's.
const reasonEvicted = "Evicted"

// evictRequest is the eviction manager's request to a worker.
type evictRequest struct {
	message string
	grace   int64
}

// Active are the pods admitted here that have not finished: what the
// eviction manager ranks.
func (m *Manager) Active() []*corev1.Pod { return m.admittedPods(nil) }

// Evict asks the pod's worker to stop it within grace seconds and fail it
// for good, reason Evicted with message (upstream's eviction), and a
// DisruptionTarget condition saying the kubelet ended it. False when the
// pod is not running here.
func (m *Manager) Evict(uid types.UID, message string, grace int64) bool {
	m.mu.Lock()
	w := m.workers[uid]
	m.mu.Unlock()
	if w == nil || !w.admitted.Load() {
		return false
	}
	w.mu.Lock()
	w.evicting = &evictRequest{message: message, grace: grace}
	w.mu.Unlock()
	w.kick()
	return true
}

func (w *worker) takeEviction() *evictRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	ev := w.evicting
	w.evicting = nil
	if w.terminal() {
		return nil
	}
	return ev
}

func (w *worker) evict(ctx context.Context, pod *corev1.Pod, ev *evictRequest) {
	w.m.log.Warn("Evicting pod", "pod", pod.Namespace+"/"+pod.Name, "message", ev.message, "gracePeriod", ev.grace)
	cond := &corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "TerminationByKubelet",
		Message: ev.message, LastTransitionTime: metav1.Now()}
	w.fail(ctx, pod, corev1.EventTypeWarning, reasonEvicted, ev.message, ev.grace, cond)
}
