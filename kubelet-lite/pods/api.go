package pods

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

const apiSource = "api"

// RunAPI follows the Pods bound to this node (a field-selected informer)
// until ctx ends.
func (m *Manager) RunAPI(ctx context.Context) error {
	m.Sources(apiSource)
	factory := informers.NewSharedInformerFactoryWithOptions(m.client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = "spec.nodeName=" + m.cfg.NodeName
	}))
	inf := factory.Core().V1().Pods().Informer()
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
	factory.Start(ctx.Done())
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
