package pods

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// eventQueue bounds the Events waiting for the API server; beyond it
// they are dropped (and logged), never waited for.
const eventQueue = 512

// event records a Kubernetes Event about pod (what `kubectl describe pod`
// shows); best effort, and only with an API server. The pod worker only
// queues it: one goroutine sends, as upstream's broadcaster does, so a
// slow API server never holds up starting a container.
func (m *Manager) event(pod *corev1.Pod, typ, reason, msg string) {
	if m.events == nil || pod == nil || IsStatic(pod) {
		return
	}
	now := metav1.NewTime(time.Now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", pod.Name, time.Now().UnixNano()), Namespace: pod.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name,
			UID: pod.UID, ResourceVersion: pod.ResourceVersion},
		Reason: reason, Message: msg, Type: typ, Count: 1, FirstTimestamp: now, LastTimestamp: now,
		Source:              corev1.EventSource{Component: "kubelet", Host: m.cfg.NodeName},
		ReportingController: "kubelet", ReportingInstance: m.cfg.NodeName,
	}
	select {
	case m.events <- ev:
	default:
		m.log.Debug("Event queue full; dropping an event", "pod", pod.Namespace+"/"+pod.Name, "reason", reason)
	}
}

// sendEvents creates the queued Events, for the process's lifetime.
func (m *Manager) sendEvents() {
	for ev := range m.events {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := m.client.CoreV1().Events(ev.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
			m.log.Debug("Recording an event failed", "pod", ev.Namespace+"/"+ev.InvolvedObject.Name, "reason", ev.Reason, "error", err)
		}
		cancel()
	}
}

// reportWaiting records an event for every new reason a container cannot
// run, once per distinct message.
func (w *worker) reportWaiting(pod *corev1.Pod) {
	for name, wt := range w.waiting {
		key := name + "\x00" + wt.reason + "\x00" + wt.message
		if w.reported[key] {
			continue
		}
		w.reported[key] = true
		reason := "Failed"
		if wt.reason == "CrashLoopBackOff" || wt.reason == "ImagePullBackOff" {
			reason = "BackOff"
		}
		w.m.event(pod, corev1.EventTypeWarning, reason, fmt.Sprintf("container %s: %s: %s", name, wt.reason, wt.message))
	}
}
