package pods

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hivelet/hivelet/kubelet-lite/cri"
)

// flakyRuntime panics in its first sandbox listing, standing for any bug
// a pod's spec or the runtime's answers could trip in a sync; later
// calls answer an empty runtime.
type flakyRuntime struct {
	runtimeapi.RuntimeServiceClient
	calls atomic.Int32
}

func (f *flakyRuntime) ListPodSandbox(context.Context, *runtimeapi.ListPodSandboxRequest, ...grpc.CallOption) (*runtimeapi.ListPodSandboxResponse, error) {
	if f.calls.Add(1) == 1 {
		var sb *runtimeapi.PodSandbox
		_ = sb.Metadata.Name // a nil dereference, as a bug would make it
	}
	return &runtimeapi.ListPodSandboxResponse{}, nil
}

func (f *flakyRuntime) ListContainers(context.Context, *runtimeapi.ListContainersRequest, ...grpc.CallOption) (*runtimeapi.ListContainersResponse, error) {
	return &runtimeapi.ListContainersResponse{}, nil
}

func TestWorkerSurvivesAPanic(t *testing.T) {
	m := NewManager(Config{NodeName: "n", RootDir: t.TempDir()}, &cri.Client{Runtime: &flakyRuntime{}}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	w := newWorker(m, pod)
	if gone := w.safeSync(context.Background()); gone {
		t.Fatal("a panicking sync reported the pod gone")
	}
	if w.lastStatus == nil || len(w.lastStatus.ContainerStatuses) != 1 {
		t.Fatalf("no status after the panic: %+v", w.lastStatus)
	}
	wt := w.lastStatus.ContainerStatuses[0].State.Waiting
	if wt == nil || wt.Reason != "CreateContainerError" || !strings.Contains(wt.Message, "internal error") {
		t.Errorf("container state after the panic: %+v", w.lastStatus.ContainerStatuses[0].State)
	}
	if !w.reported[reasonFailedSync+"kubelet-lite internal error syncing this pod: runtime error: invalid memory address or nil pointer dereference"] {
		t.Errorf("no FailedSync event recorded: %v", w.reported)
	}
}

func TestAdmitRejects(t *testing.T) {
	m := NewManager(Config{NodeName: "n", RootDir: t.TempDir()}, &cri.Client{}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1"},
		Spec: corev1.PodSpec{SecurityContext: &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "net.core.somaxconn", Value: "1"}}},
			Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	if reason, err := m.admit(pod); reason != SysctlForbidden || err == nil {
		t.Errorf("unsafe sysctl: %q %v", reason, err)
	}
	w := newWorker(m, pod)
	w.reject(context.Background(), pod, SysctlForbidden, errors.New("x"))
	if !w.terminal() || w.lastStatus.Reason != SysctlForbidden {
		t.Errorf("a rejected pod is not Failed for good: %+v", w.lastStatus)
	}
	pod.Name = "Bad_Name"
	pod.Spec.SecurityContext = nil
	if reason, err := m.admit(pod); reason != reasonInvalidPod || err == nil {
		t.Errorf("invalid name: %q %v", reason, err)
	}
}

func TestRejectedPodStaysFailed(t *testing.T) {
	m := NewManager(Config{NodeName: "n", RootDir: t.TempDir()}, &cri.Client{Runtime: &flakyRuntime{}}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.rt.Runtime.(*flakyRuntime).calls.Store(1) // no panic here
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "Bad_Name", Namespace: "ns", UID: "u1"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	w := newWorker(m, pod)
	for range 3 {
		w.safeSync(context.Background())
		if w.lastStatus == nil || w.lastStatus.Phase != corev1.PodFailed || w.lastStatus.Reason != reasonInvalidPod {
			t.Fatalf("status after a sync: %+v", w.lastStatus)
		}
	}
}

func TestHostPortConflictsAreRejected(t *testing.T) {
	m, _ := fakeNode(t)
	withPort := func(uid, hostIP string, proto corev1.Protocol) *worker {
		pod := testPod(uid, nil, corev1.Container{Name: "main", Ports: []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080, HostIP: hostIP, Protocol: proto}}})
		return syncedWorker(m, pod)
	}
	first := withPort("a", "", "")
	if first.lastStatus.Phase == corev1.PodFailed {
		t.Fatalf("the first pod with the port was rejected: %s", first.lastStatus.Message)
	}
	clash := withPort("b", "10.0.0.1", corev1.ProtocolTCP) // every address includes this one
	if st := clash.lastStatus; st.Phase != corev1.PodFailed || st.Reason != reasonNodePorts || !strings.Contains(st.Message, "didn't have free ports") {
		t.Errorf("a second pod on the port: phase %s reason %q message %q", st.Phase, st.Reason, st.Message)
	}
	if st := withPort("c", "", corev1.ProtocolUDP).lastStatus; st.Phase == corev1.PodFailed {
		t.Errorf("the same port over UDP was rejected: %s", st.Message)
	}
	// Once the holder has finished, the port is free again.
	first.mu.Lock()
	first.published = &corev1.PodStatus{Phase: corev1.PodSucceeded}
	first.mu.Unlock()
	if st := withPort("d", "10.0.0.1", corev1.ProtocolTCP).lastStatus; st.Phase == corev1.PodFailed {
		t.Errorf("the port of a finished pod was not freed: %s", st.Message)
	}
}
