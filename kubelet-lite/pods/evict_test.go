package pods

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestEvictStopsAndFailsThePod: an evicted pod's containers are stopped,
// it is Failed with reason Evicted and the manager's message, carries a
// DisruptionTarget condition, leaves the active set and is never
// restarted, whatever its restart policy.
func TestEvictStopsAndFailsThePod(t *testing.T) {
	rt, pod, w, id := runningMain(t, "evict", corev1.Container{Name: "main"})
	m := w.m
	m.mu.Lock()
	m.workers[pod.UID] = w
	m.mu.Unlock()
	if len(m.Active()) != 1 {
		t.Fatalf("%d active pods, want the running one", len(m.Active()))
	}
	if !m.Evict(pod.UID, "The node was low on resource: memory.", 1) {
		t.Fatal("Evict refused a running pod")
	}
	w.sync(context.Background())
	st := w.lastStatus
	if st.Phase != corev1.PodFailed || st.Reason != "Evicted" || st.Message != "The node was low on resource: memory." {
		t.Errorf("status %s %q %q", st.Phase, st.Reason, st.Message)
	}
	found := false
	for _, c := range st.Conditions {
		found = found || c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue && c.Reason == "TerminationByKubelet"
	}
	if !found {
		t.Errorf("no DisruptionTarget condition in %+v", st.Conditions)
	}
	if cs := rt.Containers(string(pod.UID))["main"]; len(cs) != 1 || cs[0].Id != id || cs[0].State != exited {
		t.Errorf("containers after eviction: %+v", cs)
	}
	w.sync(context.Background())
	if cs := rt.Containers(string(pod.UID))["main"]; len(cs) != 1 {
		t.Errorf("the evicted pod was restarted: %d instances", len(cs))
	}
	if len(m.Active()) != 0 {
		t.Error("the evicted pod is still active")
	}
	if m.Evict(pod.UID, "again", 1) {
		w.sync(context.Background())
	}
	if w.lastStatus.Message != "The node was low on resource: memory." {
		t.Errorf("a second eviction rewrote the status: %q", w.lastStatus.Message)
	}
}
