package k8s

import (
	"context"
	"reflect"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
	"github.com/hivelet/hivelet/daemon/logfields"
)

// EnableHostPorts makes the source follow this node's pods too and hand
// on each pod's hostPorts as a Service of type lb.TypeHostPort, so the
// agent serves them whichever kubelet and CNI plugin run the pod. It
// needs list and watch on pods; call it before Start.
func (s *Source) EnableHostPorts() { s.hostPorts = true }

// watchHostPorts follows the pods scheduled to this node and returns the
// handler registration whose sync the first sync waits for (a restarted
// agent must not drop a hostPort only because its pod was not listed yet).
func (s *Source) watchHostPorts(stop <-chan struct{}) (cache.ResourceEventHandlerRegistration, error) {
	f := informers.NewSharedInformerFactoryWithOptions(s.client, 0, informers.WithTransform(podHostPortsOnly),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "spec.nodeName=" + s.nodeName }))
	reg, err := f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.onPod(nil, obj) },
		UpdateFunc: s.onPod,
		DeleteFunc: func(obj any) { s.onPod(obj, nil) },
	})
	if err != nil {
		return nil, err
	}
	f.Start(stop)
	return reg, nil
}

// mayListPods tries one small list of this node's pods: an agent running
// with kube-proxy's RBAC alone may not, and must then serve Services as
// before rather than wait forever for a list it will never get.
func (s *Source) mayListPods(ctx context.Context) bool {
	_, err := s.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + s.nodeName, Limit: 1})
	if apierrors.IsForbidden(err) {
		s.log.Warn("hostPorts are not served: the agent may not list pods (grant it get, list and watch on pods, or pass --enable-host-port=false)", logfields.Error, err)
		return false
	}
	return true // other errors: the informer retries, as for Services
}

// onPod hands on the change of a pod's hostPorts; a pod update that does
// not change them (most: status) is not a change. The node check guards
// against servers (and fakes) that ignore the field selector.
func (s *Source) onPod(oldObj, newObj any) {
	var prev, cur *lb.Service
	if p, ok := unwrap(oldObj).(*corev1.Pod); ok && p.Spec.NodeName == s.nodeName {
		prev = lb.ConvertPodHostPorts(p)
	}
	if p, ok := unwrap(newObj).(*corev1.Pod); ok && p.Spec.NodeName == s.nodeName {
		cur = lb.ConvertPodHostPorts(p)
	}
	if reflect.DeepEqual(prev, cur) {
		return
	}
	s.handOnService(prev, cur)
}

// podHostPortsOnly keeps of a pod what ConvertPodHostPorts reads: the
// cache holds every pod of the node, and most fields of a pod (env,
// volumes, probes, conditions, managedFields) are large.
func podHostPortsOnly(obj any) (any, error) {
	in, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: in.Namespace, Name: in.Name, UID: in.UID, ResourceVersion: in.ResourceVersion},
		Spec:       corev1.PodSpec{NodeName: in.Spec.NodeName, HostNetwork: in.Spec.HostNetwork},
		Status:     corev1.PodStatus{Phase: in.Status.Phase, PodIP: in.Status.PodIP, PodIPs: in.Status.PodIPs},
	}
	out.Spec.Containers = portsOnly(in.Spec.Containers)
	out.Spec.InitContainers = portsOnly(in.Spec.InitContainers)
	return out, nil
}

func portsOnly(cs []corev1.Container) []corev1.Container {
	var out []corev1.Container
	for i := range cs {
		if len(cs[i].Ports) > 0 {
			out = append(out, corev1.Container{Name: cs[i].Name, Ports: cs[i].Ports, RestartPolicy: cs[i].RestartPolicy})
		}
	}
	return out
}
