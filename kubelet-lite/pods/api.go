package pods

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

const apiSource = "api"

// RunAPI follows the Pods bound to this node (a field-selected informer)
// until ctx ends.
func (m *Manager) RunAPI(ctx context.Context) error {
	m.Sources(apiSource)
	pods := m.client.CoreV1().Pods(metav1.NamespaceAll)
	bound := func(o *metav1.ListOptions) { o.FieldSelector = "spec.nodeName=" + m.cfg.NodeName }
	inf := cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			bound(&o)
			list := &corev1.PodList{}
			return list, pods.List(ctx, o, list)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			bound(&o)
			return pods.Watch(ctx, o)
		},
	}, &corev1.Pod{}, 0, cache.Indexers{})
	reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { m.fromAPI(obj) },
		UpdateFunc: func(_, obj any) { m.fromAPI(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				m.Remove(pod.UID)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watch pods: %w", err)
	}
	go inf.RunWithContext(ctx)
	// The handler's checker: the source is ready only once every listed
	// pod has been handed over, or adoption would remove containers of
	// pods still in the queue.
	if !cache.WaitFor(ctx, "", reg.HasSyncedChecker()) {
		return ctx.Err()
	}
	m.SourceReady(apiSource)
	return nil
}

func (m *Manager) fromAPI(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok || pod.Spec.NodeName != m.cfg.NodeName {
		return
	}
	if pod.Annotations[AnnotationSource] == staticSource {
		return // a mirror pod: the file is the source
	}
	m.Update(pod)
}
