package k8s

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
)

func (r *recorder) hostPorts(pod string) []lb.HostPort {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.services[lb.HostPortName("shop", pod)]; s != nil {
		return s.HostPorts
	}
	return nil
}

func podOn(node, name, ip string, hostPort int32) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c",
			Ports: []corev1.ContainerPort{{ContainerPort: 8080, HostPort: hostPort}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip},
	}
}

func TestSourceServesThisNodesHostPorts(t *testing.T) {
	listed := podOn("node-a", "listed", "10.244.0.5", 9000)
	client := fake.NewClientset(listed, podOn("node-b", "elsewhere", "10.244.1.5", 9000))
	rec := &recorder{services: map[lb.ServiceName]*lb.Service{}, slices: map[string]*lb.EndpointSlice{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := New(client, "node-a", rec, slog.New(slog.NewTextHandler(io.Discard, nil)))
	src.EnableHostPorts()
	if err := src.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Listed before Start returns: the first sync keeps its frontends.
	if hp := rec.hostPorts("listed"); len(hp) != 1 || hp[0].Port != 9000 || hp[0].Backend != netip.MustParseAddrPort("10.244.0.5:8080") {
		t.Fatalf("after Start: listed pod's hostPorts %+v", hp)
	}
	if hp := rec.hostPorts("elsewhere"); hp != nil {
		t.Errorf("a pod of another node is served: %+v", hp)
	}

	pods := client.CoreV1().Pods("shop")
	// Scheduled, then given an address: served from then on.
	fresh := podOn("node-a", "fresh", "", 9001)
	if _, err := pods.Create(ctx, fresh, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	fresh.Status.PodIP = "10.244.0.6"
	if _, err := pods.UpdateStatus(ctx, fresh, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new pod's hostPort", func() bool { return len(rec.hostPorts("fresh")) == 1 })

	// Finished, then deleted: no longer served.
	listed.Status.Phase = corev1.PodSucceeded
	if _, err := pods.UpdateStatus(ctx, listed, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the finished pod's hostPort gone", func() bool { return rec.hostPorts("listed") == nil })
	if err := pods.Delete(ctx, "fresh", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deleted pod's hostPort gone", func() bool { return rec.hostPorts("fresh") == nil })
}

// An agent with kube-proxy's RBAC alone (no pods) still starts and serves
// Services: hostPorts are left out with a warning, not waited for.
func TestSourceStartsWithoutPodsRBAC(t *testing.T) {
	client := fake.NewClientset(service("web", 80), podOn("node-a", "listed", "10.244.0.5", 9000))
	client.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(corev1.Resource("pods"), "", errors.New("RBAC: no"))
	})
	rec := &recorder{services: map[lb.ServiceName]*lb.Service{}, slices: map[string]*lb.EndpointSlice{}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src := New(client, "node-a", rec, slog.New(slog.NewTextHandler(io.Discard, nil)))
	src.EnableHostPorts()
	if err := src.Start(ctx); err != nil {
		t.Fatalf("Start without pods RBAC: %v", err)
	}
	if rec.port("web") != 80 || rec.hostPorts("listed") != nil {
		t.Errorf("web port %d (want 80), hostPorts %+v (want none)", rec.port("web"), rec.hostPorts("listed"))
	}
}
