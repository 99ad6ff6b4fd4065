package pods

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"

	"github.com/hivelet/hivelet/kubelet-lite/cri/critest"
	"github.com/hivelet/hivelet/kubelet-lite/kubeapi"
)

// fakeNode is a Manager over cri-api's fake runtime: worker behaviour in
// milliseconds, no containerd, no API server.
func fakeNode(t *testing.T) (*Manager, *critest.Runtime) {
	t.Helper()
	rt, client := critest.New("busybox:1")
	dir := t.TempDir()
	m := NewManager(Config{NodeName: "n", RootDir: dir, PodLogsDir: dir + "/logs", Allocatable: testAllocatable}, client, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return m, rt
}

func testPod(uid string, init []corev1.Container, main ...corev1.Container) *corev1.Pod {
	fill := func(cs []corev1.Container) {
		for i := range cs {
			cs[i].Image, cs[i].ImagePullPolicy = "busybox:1", corev1.PullIfNotPresent
		}
	}
	fill(init)
	fill(main)
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p-" + uid, Namespace: "ns", UID: k8stypes.UID("uid-" + uid)},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, TerminationGracePeriodSeconds: ptr.To(int64(0)),
			InitContainers: init, Containers: main}}
}

// state is each container's states, oldest attempt first.
func state(rt *critest.Runtime, pod *corev1.Pod) map[string][]runtimeapi.ContainerState {
	out := map[string][]runtimeapi.ContainerState{}
	for name, cs := range rt.Containers(string(pod.UID)) {
		for _, c := range cs {
			out[name] = append(out[name], c.State)
		}
	}
	return out
}

func newest(rt *critest.Runtime, pod *corev1.Pod, name string) *runtimeapi.ContainerStatus {
	cs := rt.Containers(string(pod.UID))[name]
	if len(cs) == 0 {
		return nil
	}
	return cs[len(cs)-1]
}

const (
	running = runtimeapi.ContainerState_CONTAINER_RUNNING
	exited  = runtimeapi.ContainerState_CONTAINER_EXITED
)

func TestWorkerRunsInitContainersInOrder(t *testing.T) {
	m, rt := fakeNode(t)
	pod := testPod("init", []corev1.Container{{Name: "one"}, {Name: "two"}}, corev1.Container{Name: "main"})
	w := newWorker(m, pod)
	ctx := context.Background()
	w.sync(ctx)
	if got := state(rt, pod); len(got) != 1 || len(got["one"]) != 1 || got["one"][0] != running {
		t.Fatalf("after the first sync: %v, want only init container one running", got)
	}
	w.sync(ctx)
	if got := state(rt, pod); got["two"] != nil {
		t.Fatalf("init container two started while one runs: %v", got)
	}
	// Waiting containers say why, in upstream's words.
	for _, cs := range append(w.lastStatus.InitContainerStatuses[1:], w.lastStatus.ContainerStatuses...) {
		if cs.State.Waiting == nil || cs.State.Waiting.Reason != "PodInitializing" {
			t.Errorf("%s during the init phase: %+v, want waiting PodInitializing", cs.Name, cs.State)
		}
	}
	rt.Exit(newest(rt, pod, "one").Id, 0)
	w.sync(ctx)
	if got := state(rt, pod); len(got["two"]) != 1 || got["main"] != nil {
		t.Fatalf("after one succeeded: %v", got)
	}
	rt.Exit(newest(rt, pod, "two").Id, 0)
	w.sync(ctx)
	if got := state(rt, pod); len(got["main"]) != 1 || got["main"][0] != running || len(got["one"]) != 1 {
		t.Fatalf("after both succeeded: %v", got)
	}
	if w.lastStatus.Phase != corev1.PodRunning {
		t.Errorf("phase %s", w.lastStatus.Phase)
	}
	// The main container ends well: with restartPolicy Never the pod is done.
	rt.Exit(newest(rt, pod, "main").Id, 0)
	w.sync(ctx)
	if w.lastStatus.Phase != corev1.PodSucceeded {
		t.Errorf("phase %s after the main container succeeded", w.lastStatus.Phase)
	}
}

func TestWorkerSidecars(t *testing.T) {
	m, rt := fakeNode(t)
	always := corev1.ContainerRestartPolicyAlways
	pod := testPod("sidecar", []corev1.Container{{Name: "proxy", RestartPolicy: &always}, {Name: "setup"}}, corev1.Container{Name: "main"})
	w := newWorker(m, pod)
	ctx := context.Background()
	w.sync(ctx)
	if got := state(rt, pod); len(got) != 1 || got["proxy"][0] != running {
		t.Fatalf("first sync: %v, want the sidecar alone", got)
	}
	w.sync(ctx) // the sidecar has started (no startup probe): the next init container goes
	if got := state(rt, pod); len(got["setup"]) != 1 || got["main"] != nil {
		t.Fatalf("second sync: %v", got)
	}
	rt.Exit(newest(rt, pod, "setup").Id, 0)
	w.sync(ctx)
	if got := state(rt, pod); len(got["main"]) != 1 || got["proxy"][0] != running {
		t.Fatalf("after init: %v", got)
	}
	if w.lastStatus.Conditions[1].Status != corev1.ConditionTrue || w.lastStatus.Phase != corev1.PodRunning {
		t.Errorf("status %+v", w.lastStatus)
	}
	// The sidecar dies: restarted at once although the pod's policy is
	// Never; the main container is left alone.
	mainID := newest(rt, pod, "main").Id
	rt.Exit(newest(rt, pod, "proxy").Id, 1)
	w.sync(ctx)
	if got := state(rt, pod); len(got["proxy"]) != 2 || got["proxy"][1] != running || newest(rt, pod, "main").Id != mainID {
		t.Fatalf("after the sidecar died: %v", got)
	}
	// The main container finishes: the pod succeeds and the sidecar stops.
	rt.Exit(mainID, 0)
	w.sync(ctx)
	if w.lastStatus.Phase != corev1.PodSucceeded {
		t.Fatalf("phase %s", w.lastStatus.Phase)
	}
	if got := newest(rt, pod, "proxy").State; got != exited {
		t.Errorf("the sidecar is %v after the pod succeeded", got)
	}
}

func TestWorkerDeadline(t *testing.T) {
	m, rt := fakeNode(t)
	pod := testPod("deadline", nil, corev1.Container{Name: "main"})
	pod.Spec.ActiveDeadlineSeconds = ptr.To(int64(1))
	w := newWorker(m, pod)
	ctx := context.Background()
	w.sync(ctx)
	if got := state(rt, pod); len(got["main"]) != 1 || got["main"][0] != running {
		t.Fatalf("not started: %v", got)
	}
	w.startTime = metav1.NewTime(time.Now().Add(-2 * time.Second))
	w.sync(ctx)
	if w.lastStatus.Phase != corev1.PodFailed || w.lastStatus.Reason != reasonDeadlineExceeded {
		t.Fatalf("status past the deadline: %s %s", w.lastStatus.Phase, w.lastStatus.Reason)
	}
	if got := newest(rt, pod, "main").State; got != exited {
		t.Errorf("the container is %v past the deadline", got)
	}
	w.sync(ctx)
	if got := state(rt, pod); len(got["main"]) != 1 || w.lastStatus.Reason != reasonDeadlineExceeded {
		t.Errorf("a later sync restarted or rewrote the pod: %v %s", got, w.lastStatus.Reason)
	}
}

// runningMain runs, on a fake node, a restart-always pod (generation 1)
// whose one container is main, and returns its worker and first instance.
// testAllocatable is the fake node's: 4 CPUs, 8 GiB, 110 pods.
var testAllocatable = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi"),
	corev1.ResourcePods: resource.MustParse("110")}

func runningMain(t *testing.T, uid string, main corev1.Container) (*critest.Runtime, *corev1.Pod, *worker, string) {
	t.Helper()
	m, rt := fakeNode(t)
	pod := testPod(uid, nil, main)
	pod.Spec.RestartPolicy = corev1.RestartPolicyAlways
	pod.Generation = 1
	w := newWorker(m, pod)
	w.sync(context.Background())
	return rt, pod, w, newest(rt, pod, "main").Id
}

func TestWorkerReplacesAChangedContainerAndPrunesDeadOnes(t *testing.T) {
	rt, pod, w, first := runningMain(t, "change", corev1.Container{Name: "main"})
	ctx := context.Background()
	changed := pod.DeepCopy()
	changed.Spec.Containers[0].Args = []string{"new"}
	changed.Generation = 2
	w.update(changed)
	w.sync(ctx)
	// The status says which generation it answers, and so does each of
	// the kubelet's conditions.
	if w.lastStatus.ObservedGeneration != 2 {
		t.Errorf("observedGeneration %d after the update to generation 2", w.lastStatus.ObservedGeneration)
	}
	for _, c := range w.lastStatus.Conditions {
		if c.ObservedGeneration != 2 {
			t.Errorf("condition %s observedGeneration %d, want 2", c.Type, c.ObservedGeneration)
		}
	}
	cs := rt.Containers(string(pod.UID))["main"]
	if len(cs) != 2 || cs[0].Id != first || cs[0].State != exited || cs[1].State != running {
		t.Fatalf("after the spec change: %v", state(rt, pod))
	}
	// Crash it repeatedly (back-off aside): only two instances stay.
	for range 4 {
		rt.Exit(newest(rt, changed, "main").Id, 1)
		w.backoff["main"] = &backoff{}
		w.sync(ctx)
	}
	if n := len(rt.Containers(string(pod.UID))["main"]); n != 2 {
		t.Errorf("%d instances kept, want the current and the previous", n)
	}
}

func TestWorkerRefusesARunningPodWhoseSpecTurnsInvalid(t *testing.T) {
	m, rt := fakeNode(t)
	pod := testPod("turns", nil, corev1.Container{Name: "main"})
	w := newWorker(m, pod)
	ctx := context.Background()
	w.sync(ctx)
	if got := newest(rt, pod, "main"); got == nil || got.State != running {
		t.Fatalf("not started: %v", state(rt, pod))
	}
	bad := pod.DeepCopy()
	bad.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "x", MountPath: "/x", SubPath: "../../etc"}}
	w.update(bad)
	w.sync(ctx)
	if w.lastStatus.Phase != corev1.PodFailed || w.lastStatus.Reason != reasonInvalidPod {
		t.Errorf("status %s %s", w.lastStatus.Phase, w.lastStatus.Reason)
	}
	if got := newest(rt, pod, "main").State; got != exited {
		t.Errorf("the container is %v after its pod was refused", got)
	}
}

// graceRecorder records the timeout of each StopContainer.
type graceRecorder struct {
	runtimeapi.RuntimeServiceClient
	timeouts []int64
}

func (g *graceRecorder) StopContainer(ctx context.Context, in *runtimeapi.StopContainerRequest, opts ...grpc.CallOption) (*runtimeapi.StopContainerResponse, error) {
	g.timeouts = append(g.timeouts, in.Timeout)
	return g.RuntimeServiceClient.StopContainer(ctx, in, opts...)
}

func TestStopGivesTheWholeGracePeriod(t *testing.T) {
	m, rt := fakeNode(t)
	rec := &graceRecorder{RuntimeServiceClient: m.rt.Runtime}
	m.rt.Runtime = rec
	pod := testPod("grace", nil, corev1.Container{Name: "main"})
	pod.Spec.TerminationGracePeriodSeconds = ptr.To(int64(2))
	w := newWorker(m, pod)
	w.sync(context.Background())
	if newest(rt, pod, "main") == nil {
		t.Fatal("not started")
	}
	m.removeRuntimePod(context.Background(), pod.UID, gracePeriod(pod), pod)
	if len(rec.timeouts) != 1 || rec.timeouts[0] != 2 {
		t.Errorf("StopContainer timeouts %v, want [2]", rec.timeouts)
	}
}

// condition returns the status's condition of type t.
func condition(st *corev1.PodStatus, t corev1.PodConditionType) corev1.PodCondition {
	for _, c := range st.Conditions {
		if c.Type == t {
			return c
		}
	}
	return corev1.PodCondition{}
}

// TestWorkerConditionsSayWhy checks the reasons and messages upstream
// gives the kubelet's conditions, which the InitContainer conformance
// tests read: a failed init container, a pod still initializing, and a
// pod that completed.
func TestWorkerConditionsSayWhy(t *testing.T) {
	m, rt := fakeNode(t)
	pod := testPod("why", []corev1.Container{{Name: "one"}, {Name: "two"}}, corev1.Container{Name: "main"})
	w := newWorker(m, pod)
	ctx := context.Background()
	w.sync(ctx)
	if c := condition(w.lastStatus, corev1.PodInitialized); c.Status != corev1.ConditionFalse || c.Reason != "ContainersNotInitialized" ||
		c.Message != "containers with incomplete status: [one two]" {
		t.Errorf("initializing: %+v", c)
	}
	if c := condition(w.lastStatus, corev1.PodReady); c.Reason != "ContainersNotReady" || c.Message != "containers with unready status: [main]" {
		t.Errorf("Ready while initializing: %+v", c)
	}
	rt.Exit(newest(rt, pod, "one").Id, 0)
	w.sync(ctx)
	rt.Exit(newest(rt, pod, "two").Id, 1)
	w.sync(ctx)
	if w.lastStatus.Phase != corev1.PodFailed {
		t.Fatalf("phase %s after init container two failed (restartPolicy Never)", w.lastStatus.Phase)
	}
	if c := condition(w.lastStatus, corev1.PodInitialized); c.Reason != "ContainersNotInitialized" || c.Message != "containers with incomplete status: [two]" {
		t.Errorf("after two failed: %+v", c)
	}
	if c := condition(w.lastStatus, corev1.ContainersReady); c.Status != corev1.ConditionFalse || c.Reason != "PodFailed" {
		t.Errorf("ContainersReady of a failed pod: %+v", c)
	}

	done := testPod("done", nil, corev1.Container{Name: "main"})
	w = newWorker(m, done)
	w.sync(ctx)
	if c := condition(w.lastStatus, corev1.ContainersReady); c.Status != corev1.ConditionTrue || c.Reason != "" {
		t.Errorf("ContainersReady while running: %+v", c)
	}
	rt.Exit(newest(rt, done, "main").Id, 0)
	w.sync(ctx)
	for _, want := range []corev1.PodCondition{
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, Reason: "PodCompleted"},
		{Type: corev1.ContainersReady, Status: corev1.ConditionFalse, Reason: "PodCompleted"},
		{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "PodCompleted"},
	} {
		if c := condition(w.lastStatus, want.Type); c.Status != want.Status || c.Reason != want.Reason {
			t.Errorf("succeeded pod: %+v, want %s %s", c, want.Status, want.Reason)
		}
	}
}

// apiNode is fakeNode with an API server: reply answers each request
// (nil: 404), under a lock.
func apiNode(t *testing.T, reply func(r *http.Request, body []byte) any) (*Manager, *critest.Runtime) {
	t.Helper()
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		out := reply(r, body)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if out == nil {
			w.WriteHeader(http.StatusNotFound)
			out = metav1.Status{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: metav1.StatusFailure,
				Reason: metav1.StatusReasonNotFound, Code: http.StatusNotFound}
		}
		_ = json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(srv.Close)
	client, err := kubeapi.New(&rest.Config{Host: srv.URL, ContentConfig: rest.ContentConfig{ContentType: "application/json"}})
	if err != nil {
		t.Fatal(err)
	}
	rt, crc := critest.New("busybox:1")
	dir := t.TempDir()
	return NewManager(Config{NodeName: "n", RootDir: dir, PodLogsDir: dir + "/logs", Allocatable: testAllocatable}, crc, client, slog.New(slog.NewTextHandler(io.Discard, nil))), rt
}

var emptyServices = corev1.ServiceList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceList"}}

// TestWorkerRecordsContainerEvents checks the Events upstream records
// for a container's life, which users read in `kubectl describe` and
// the conformance tests wait on (Started): image present, created,
// started, and stopping on deletion.
func TestWorkerRecordsContainerEvents(t *testing.T) {
	var mu sync.Mutex
	var reasons []string
	m, _ := apiNode(t, func(r *http.Request, body []byte) any {
		var ev corev1.Event
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/events") && json.Unmarshal(body, &ev) == nil:
			mu.Lock()
			reasons = append(reasons, ev.Reason+": "+ev.Message)
			mu.Unlock()
		case strings.HasSuffix(r.URL.Path, "/services"):
			return emptyServices
		}
		return nil
	})
	pod := testPod("events", nil, corev1.Container{Name: "main"})
	pod.Spec.DNSPolicy = corev1.DNSDefault
	w := newWorker(m, pod)
	w.sync(context.Background())
	m.removeRuntimePod(context.Background(), pod.UID, 0, pod)
	want := []string{`Pulled: Container image "busybox:1" already present on machine`, "Created: Created container: main",
		"Started: Started container main", "Killing: Stopping container main"}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got := slices.Clone(reasons)
		mu.Unlock()
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("events %q, want %q", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDeletedPodEndsTerminal checks the last status of a pod deleted
// while it ran (restartPolicy Always): terminal, its container terminated,
// written before the kubelet confirms the deletion, as the Job
// controller needs to drop its finalizer (the "pod failure policy ...
// DisruptionTarget" conformance test).
func TestDeletedPodEndsTerminal(t *testing.T) {
	pod := testPod("del", nil, corev1.Container{Name: "main"})
	pod.Spec.RestartPolicy = corev1.RestartPolicyAlways
	pod.Spec.DNSPolicy = corev1.DNSDefault
	var written []corev1.PodStatus
	var deleted bool
	m, _ := apiNode(t, func(r *http.Request, body []byte) any {
		switch {
		case strings.HasSuffix(r.URL.Path, "/services"):
			return emptyServices
		case r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/status"):
			var p corev1.Pod
			if json.Unmarshal(body, &p) == nil {
				written = append(written, p.Status)
			}
			return p
		case r.Method == http.MethodDelete && strings.HasSuffix(r.URL.Path, "/pods/"+pod.Name):
			deleted = true
			return metav1.Status{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: metav1.StatusSuccess}
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/pods/"+pod.Name):
			p := pod.DeepCopy()
			p.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
			return p
		}
		return nil
	})
	w := newWorker(m, pod)
	ctx := context.Background()
	w.sync(ctx)
	if n := len(written); n == 0 || written[n-1].Phase != corev1.PodRunning {
		t.Fatalf("statuses %v before the deletion, want Running last", written)
	}
	gone := pod.DeepCopy()
	gone.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	gone.DeletionGracePeriodSeconds = ptr.To(int64(0))
	w.update(gone)
	if !w.sync(ctx) {
		t.Fatal("the deleted pod's worker did not finish")
	}
	// The fake runtime's stopped container exits 0: Succeeded, as
	// upstream says of a pod whose containers all ended well (one
	// killed by SIGKILL, 137, makes it Failed).
	last := written[len(written)-1]
	if last.Phase != corev1.PodSucceeded || len(last.ContainerStatuses) != 1 || last.ContainerStatuses[0].State.Terminated == nil {
		t.Errorf("last status %s %+v, want Succeeded with the container terminated", last.Phase, last.ContainerStatuses)
	}
	if c := condition(&last, corev1.PodReady); c.Status != corev1.ConditionFalse || c.Reason != "PodCompleted" {
		t.Errorf("Ready of the deleted pod: %+v", c)
	}
	if !deleted {
		t.Error("the deletion was not confirmed")
	}
}

// A pod that always restarts is Running while its containers restart,
// whatever their exit codes: Succeeded would end it for good.
func TestAlwaysRestartingPodIsNeverSucceeded(t *testing.T) {
	m, rt := fakeNode(t)
	pod := testPod("always", nil, corev1.Container{Name: "main"})
	pod.Spec.RestartPolicy = corev1.RestartPolicyAlways
	w := newWorker(m, pod)
	ctx := context.Background()
	w.sync(ctx)
	rt.Exit(newest(rt, pod, "main").Id, 0)
	rp, err := m.runtimePod(ctx, pod.UID)
	if err != nil {
		t.Fatal(err)
	}
	// Seen exited before the worker has decided on the restart.
	if st := w.status(pod, rp, nil); st.Phase != corev1.PodRunning {
		t.Errorf("restartPolicy Always, container exited 0: phase %s, want Running", st.Phase)
	}
	pod.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	if st := w.status(pod, rp, nil); st.Phase != corev1.PodSucceeded {
		t.Errorf("restartPolicy OnFailure, container exited 0: phase %s, want Succeeded", st.Phase)
	}
}

// A container whose process never starts (StartError: containerd reports
// it exited, with no start time) backs off as a crashing one does,
// instead of being recreated at every sync.
func TestWorkerBacksOffContainersThatNeverStart(t *testing.T) {
	m, rt := fakeNode(t)
	pod := testPod("nostart", nil, corev1.Container{Name: "main"})
	pod.Spec.RestartPolicy = corev1.RestartPolicyAlways
	w := newWorker(m, pod)
	ctx := context.Background()
	w.sync(ctx)
	for range 3 {
		rt.FailStart(newest(rt, pod, "main").Id)
		w.sync(ctx)
	}
	if n := len(rt.Containers(string(pod.UID))["main"]); n != 2 {
		t.Errorf("%d instances after three failed starts, want 2 (the second failure backs off): %v", n, state(rt, pod))
	}
	if got := w.waiting["main"].reason; got != "CrashLoopBackOff" {
		t.Errorf("waiting reason %q, want CrashLoopBackOff", got)
	}
}
