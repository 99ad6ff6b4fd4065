package localendpoints

import (
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
	"github.com/hivelet/hivelet/datapath"
)

// recorder is the tracker's side: the slices it holds now.
type recorder struct {
	mu     sync.Mutex
	svcs   int
	slices map[string]*lb.EndpointSlice
	calls  int
}

func (r *recorder) OnServiceUpdate(prev, cur *lb.Service) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur != nil && prev == nil {
		r.svcs++
	}
	if cur == nil {
		r.svcs--
	}
}

func (r *recorder) OnEndpointSliceUpdate(prev, cur *lb.EndpointSlice) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if prev != nil {
		if r.slices[prev.Key()] == nil {
			panic("delete of a slice never added: " + prev.Key())
		}
		delete(r.slices, prev.Key())
	}
	if cur != nil {
		r.slices[cur.Key()] = cur
	}
}

func pod(name string, ready bool, ip string, labels map[string]string, ports ...corev1.ContainerPort) corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: name, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Ports: ports}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIPs: []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}},
	}
}

func webService(targets ...lb.TargetPort) *lb.Service {
	return &lb.Service{Name: lb.ServiceName{Namespace: "web", Name: "front"}, Type: "ClusterIP",
		ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.10")},
		Ports:      []lb.ServicePort{{Name: "http", Proto: datapath.TCP, Port: 80}},
		Selector:   &lb.Selector{Labels: map[string]string{"app": "web"}, Ports: targets}}
}

func endpoints(s *lb.EndpointSlice) map[string]lb.Endpoint {
	out := map[string]lb.Endpoint{}
	for _, e := range s.Endpoints {
		out[e.Addr.String()] = e
	}
	return out
}

func TestDesired(t *testing.T) {
	app := map[string]string{"app": "web", "tier": "x"}
	named := corev1.ContainerPort{Name: "www", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}
	other := corev1.ContainerPort{Name: "www", ContainerPort: 9090, Protocol: corev1.ProtocolTCP}
	deleting := pod("gone", true, "10.244.0.5", app, named)
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	done := pod("done", true, "10.244.0.6", app, named)
	done.Status.Phase = corev1.PodSucceeded
	elsewhere := pod("ns", true, "10.244.0.7", app, named)
	elsewhere.Namespace = "other"
	dual := pod("dual", true, "10.244.0.8", app, named)
	dual.Status.PodIPs = append(dual.Status.PodIPs, corev1.PodIP{IP: "fd00::8"}, corev1.PodIP{IP: "bogus"})
	pods := []corev1.Pod{
		pod("a", true, "10.244.0.2", app, named),
		pod("b", false, "10.244.0.3", app, named),
		pod("c", true, "10.244.0.4", app, other), // the name resolves elsewhere: a group of its own
		pod("nolabel", true, "10.244.0.9", map[string]string{"app": "db"}, named),
		pod("noport", true, "10.244.0.10", app), // the named port is missing: not an endpoint
		pod("noip", true, "", app, named),
		deleting, done, elsewhere, dual,
	}
	got := desired(webService(lb.TargetPort{Name: "http", Proto: datapath.TCP, Named: "www"}), indexPods(pods), "n1")
	if len(got) != 3 {
		t.Fatalf("got %d slices, want 3 (port 8080 v4 and v6, port 9090 v4): %+v", len(got), got)
	}
	byPort := map[uint16][]*lb.EndpointSlice{}
	for _, s := range got {
		byPort[s.Ports[0].Port] = append(byPort[s.Ports[0].Port], s)
		if s.Service.Name != "front" || s.Namespace != "web" || s.Ports[0].Name != "http" {
			t.Errorf("slice %s: wrong service or port name: %+v", s.Name, s)
		}
	}
	var v4 *lb.EndpointSlice
	for _, s := range byPort[8080] {
		if !s.IPv6 {
			v4 = s
		} else if eps := endpoints(s); len(eps) != 1 || !eps["fd00::8"].Ready {
			t.Errorf("IPv6 slice: %+v", s.Endpoints)
		}
	}
	eps := endpoints(v4)
	if len(eps) != 4 {
		t.Fatalf("8080 endpoints: %+v, want a, b, gone and dual", v4.Endpoints)
	}
	if e := eps["10.244.0.2"]; !e.Ready || !e.Serving || e.Terminating || e.NodeName != "n1" {
		t.Errorf("ready pod: %+v", e)
	}
	if e := eps["10.244.0.3"]; e.Ready || e.Serving {
		t.Errorf("unready pod: %+v", e)
	}
	if e := eps["10.244.0.5"]; e.Ready || !e.Serving || !e.Terminating {
		t.Errorf("deleted pod: %+v, want serving and terminating, not ready", e)
	}
	if s := byPort[9090]; len(s) != 1 || len(s[0].Endpoints) != 1 || s[0].Endpoints[0].Addr.String() != "10.244.0.4" {
		t.Errorf("9090 group: %+v", s)
	}
	// A numbered target port needs nothing from the pod.
	got = desired(webService(lb.TargetPort{Name: "http", Proto: datapath.TCP, Number: 8000}), indexPods(pods[4:5]), "n1")
	if len(got) != 1 || got[0].Ports[0].Port != 8000 {
		t.Errorf("numbered target port: %+v", got)
	}
}

func TestControllerFollowsPods(t *testing.T) {
	var mu sync.Mutex
	app := map[string]string{"app": "web"}
	current := []corev1.Pod{pod("a", true, "10.244.0.2", app)}
	synced := false
	set := func(p []corev1.Pod) {
		mu.Lock()
		current = p
		mu.Unlock()
	}
	pods := NewPods()
	rec := &recorder{slices: map[string]*lb.EndpointSlice{}}
	c := New(rec, pods, "n1", slog.New(slog.NewTextHandler(io.Discard, nil)))
	svc := webService(lb.TargetPort{Name: "http", Proto: datapath.TCP, Number: 8080})
	c.OnServiceUpdate(nil, svc)
	if rec.svcs != 1 {
		t.Fatal("the Service was not passed on")
	}

	// Start waits for the kubelet to have reported its pods.
	started := make(chan struct{})
	ctx := t.Context()
	go func() { c.Start(ctx, 10*time.Second); close(started) }()
	time.Sleep(100 * time.Millisecond)
	select {
	case <-started:
		t.Fatal("Start returned before the kubelet had a source")
	default:
	}
	pods.SetSource(func() []corev1.Pod {
		mu.Lock()
		defer mu.Unlock()
		return append([]corev1.Pod(nil), current...)
	}, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return synced
	})
	time.Sleep(100 * time.Millisecond)
	select {
	case <-started:
		t.Fatal("Start returned before the kubelet was synced")
	default:
	}
	mu.Lock()
	synced = true
	mu.Unlock()
	<-started
	check := func(what string, want ...string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			rec.mu.Lock()
			var got []string
			for _, s := range rec.slices {
				for _, e := range s.Endpoints {
					if e.Ready {
						got = append(got, e.Addr.String())
					}
				}
			}
			rec.mu.Unlock()
			if len(got) == len(want) && (len(want) == 0 || contains(got, want)) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: ready endpoints %v, want %v", what, got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	check("at start", "10.244.0.2")

	set([]corev1.Pod{pod("a", true, "10.244.0.2", app), pod("b", true, "10.244.0.3", app)})
	pods.Changed()
	check("a second pod", "10.244.0.2", "10.244.0.3")

	rec.mu.Lock()
	calls := rec.calls
	rec.mu.Unlock()
	c.Reconcile()
	if rec.calls != calls {
		t.Error("an unchanged pod set was published again")
	}

	set([]corev1.Pod{pod("b", true, "10.244.0.3", app)})
	pods.Changed()
	check("a pod gone", "10.244.0.3")

	// The Service losing its selector takes its slices away.
	plain := *svc
	plain.Selector = nil
	c.OnServiceUpdate(svc, &plain)
	check("selector removed")
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.slices) != 0 {
		t.Errorf("slices left: %v", rec.slices)
	}
}

func contains(got, want []string) bool {
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || g == w
		}
		if !found {
			return false
		}
	}
	return true
}
