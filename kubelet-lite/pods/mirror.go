package pods

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AnnotationMirror marks the API server's copy of a static pod; its value
// is the static pod's hash.
const AnnotationMirror = "kubernetes.io/config.mirror"

// syncMirror makes the API server show a static pod: a mirror pod with
// the same spec, re-created when the file changed. Best effort: static
// pods run whether or not the API server is there.
func (m *Manager) syncMirror(ctx context.Context, pod *corev1.Pod) {
	if m.client == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pods := m.client.CoreV1().Pods(pod.Namespace)
	cur, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
	switch {
	case err == nil && cur.Annotations[AnnotationMirror] == pod.Annotations[AnnotationHash]:
		return
	case err == nil:
		// Another version (or a pod that is not ours): replace it.
		if err := pods.Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64), Preconditions: &metav1.Preconditions{UID: &cur.UID}}); err != nil && !apierrors.IsNotFound(err) {
			m.log.Debug("Replacing a mirror pod failed", "pod", pod.Namespace+"/"+pod.Name, "error", err)
			return
		}
	case !apierrors.IsNotFound(err):
		return
	}
	mirror := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, Labels: pod.Labels, Annotations: map[string]string{}}, Spec: *pod.Spec.DeepCopy()}
	for k, v := range pod.Annotations {
		mirror.Annotations[k] = v
	}
	mirror.Annotations[AnnotationMirror] = pod.Annotations[AnnotationHash]
	mirror.OwnerReferences = nil
	if _, err := pods.Create(ctx, mirror, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		m.log.Debug("Creating a mirror pod failed", "pod", pod.Namespace+"/"+pod.Name, "error", err)
	}
}

// deleteMirror removes a static pod's mirror once the pod is gone.
func (m *Manager) deleteMirror(pod *corev1.Pod) {
	if m.client == nil || pod == nil || !IsStatic(pod) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cur, err := m.client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil || cur.Annotations[AnnotationMirror] != pod.Annotations[AnnotationHash] {
		return
	}
	_ = m.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64),
		Preconditions: &metav1.Preconditions{UID: &cur.UID}})
}
