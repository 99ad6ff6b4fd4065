package pods

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type probeKind int

const (
	startup probeKind = iota
	liveness
	readiness
)

func (k probeKind) String() string { return [...]string{"startup", "liveness", "readiness"}[k] }

// prober runs a container's probes while it runs: one goroutine per
// running container, started and stopped by the pod worker's syncs.
type prober struct {
	m       *Manager
	mu      sync.Mutex
	running map[string]context.CancelFunc // container id → stop, guarded by mu
	ready   map[types.UID]map[string]bool // guarded by mu
	started map[string]bool               // container id → startup probe passed, guarded by mu
	// unknown are the containers whose readiness probe has not given a
	// first result yet (container id → pod), guarded by mu: a status
	// computed meanwhile says not ready for want of knowing.
	unknown map[string]types.UID
}

func newProber(m *Manager) *prober {
	return &prober{m: m, running: map[string]context.CancelFunc{}, ready: map[types.UID]map[string]bool{}, started: map[string]bool{}, unknown: map[string]types.UID{}}
}

// readinessKnown is false while one of the pod's readiness probes has
// not run yet.
func (p *prober) readinessKnown(uid types.UID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, u := range p.unknown {
		if u == uid {
			return false
		}
	}
	return true
}

// isReady is the container's readiness: running and, with a readiness
// probe, passing it.
func (p *prober) isReady(uid types.UID, c *corev1.Container) bool {
	if c.ReadinessProbe == nil {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ready[uid][c.Name]
}

// sync keeps probe loops for exactly the pod's running containers.
func (p *prober) sync(w *worker, pod *corev1.Pod, rp *runtimePod, podIP string) {
	live := map[string]bool{}
	sb := rp.readySandbox()
	for _, c := range probedContainers(pod) {
		if c.LivenessProbe == nil && c.ReadinessProbe == nil && c.StartupProbe == nil || sb == nil {
			continue
		}
		cur, _ := rp.latest(c.Name, sb.Id)
		if cur == nil || cur.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		live[cur.Id] = true
		p.mu.Lock()
		if _, ok := p.running[cur.Id]; !ok {
			ctx, cancel := context.WithCancel(context.Background())
			p.running[cur.Id] = cancel
			if p.ready[pod.UID] == nil {
				p.ready[pod.UID] = map[string]bool{}
			}
			p.ready[pod.UID][c.Name] = false
			if c.ReadinessProbe != nil {
				p.unknown[cur.Id] = pod.UID
			}
			go p.loop(ctx, w, pod, c, cur.Id, podIP)
		}
		p.mu.Unlock()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, cancel := range p.running {
		if !live[id] && w.ownsContainer(rp, id) {
			cancel()
			delete(p.running, id)
			delete(p.started, id)
			delete(p.unknown, id)
		}
	}
}

// probedContainers are the containers probes run for: the main ones and
// the sidecars.
func probedContainers(pod *corev1.Pod) []*corev1.Container {
	var out []*corev1.Container
	for i := range pod.Spec.InitContainers {
		if isSidecar(&pod.Spec.InitContainers[i]) {
			out = append(out, &pod.Spec.InitContainers[i])
		}
	}
	for i := range pod.Spec.Containers {
		out = append(out, &pod.Spec.Containers[i])
	}
	return out
}

// stopPod ends every probe of a pod that is going away.
func (p *prober) stopPod(uid types.UID, rp *runtimePod) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range rp.containers {
		if cancel, ok := p.running[c.Id]; ok {
			cancel()
			delete(p.running, c.Id)
			delete(p.started, c.Id)
			delete(p.unknown, c.Id)
		}
	}
	delete(p.ready, uid)
}

func (w *worker) ownsContainer(rp *runtimePod, id string) bool {
	for _, c := range rp.containers {
		if c.Id == id {
			return true
		}
	}
	return false
}

func periodOf(pr *corev1.Probe) time.Duration {
	if pr.PeriodSeconds <= 0 {
		return 10 * time.Second
	}
	return secondsDur(int64(pr.PeriodSeconds))
}

func thresholds(pr *corev1.Probe) (success, failure int32) {
	success, failure = pr.SuccessThreshold, pr.FailureThreshold
	if success <= 0 {
		success = 1
	}
	if failure <= 0 {
		failure = 3
	}
	return success, failure
}

// loop runs the container's probes until ctx ends: startup first (the
// others wait for it), then liveness and readiness on their periods.
func (p *prober) loop(ctx context.Context, w *worker, pod *corev1.Pod, c *corev1.Container, id, podIP string) {
	type state struct {
		pr           *corev1.Probe
		next         time.Time
		succ, fail   int32
		result, done bool
		told         string // the failure last told as an event
	}
	start := time.Now()
	states := map[probeKind]*state{}
	for k, pr := range map[probeKind]*corev1.Probe{startup: c.StartupProbe, liveness: c.LivenessProbe, readiness: c.ReadinessProbe} {
		if pr != nil {
			states[k] = &state{pr: pr, next: start.Add(secondsDur(int64(pr.InitialDelaySeconds)))}
		}
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		startupDone := states[startup] == nil || states[startup].done
		for _, k := range []probeKind{startup, liveness, readiness} {
			s := states[k]
			if s == nil || now.Before(s.next) || k != startup && !startupDone || k == startup && s.done {
				continue
			}
			s.next = now.Add(periodOf(s.pr))
			ok, why := p.run(ctx, c, id, podIP, s.pr)
			if !ok {
				p.m.log.Debug("Probe failed", "pod", pod.Namespace+"/"+pod.Name, "container", c.Name, "probe", k.String(), "reason", why)
				// As upstream, an Unhealthy event per failure; told once
				// per distinct reason until the probe passes again, as
				// the upstream event recorder aggregates repeats.
				if why != s.told {
					s.told = why
					p.m.event(pod, corev1.EventTypeWarning, "Unhealthy", fmt.Sprintf("container %s: %s probe failed: %s", c.Name, k, why))
				}
			} else {
				s.told = ""
			}
			succT, failT := thresholds(s.pr)
			if ok {
				s.succ, s.fail = s.succ+1, 0
			} else {
				s.fail, s.succ = s.fail+1, 0
			}
			switch k {
			case startup:
				if s.succ >= succT {
					s.done = true
					p.mu.Lock()
					p.started[id] = true
					p.mu.Unlock()
					w.kick() // a sidecar's start may let the next container go
				} else if s.fail >= failT {
					p.kill(ctx, w, pod, c, id, "startup")
					return
				}
			case liveness:
				if s.fail >= failT {
					p.kill(ctx, w, pod, c, id, "liveness")
					return
				}
			case readiness:
				res := s.result
				if s.succ >= succT {
					res = true
				} else if s.fail >= failT {
					res = false
				}
				p.mu.Lock()
				_, first := p.unknown[id]
				delete(p.unknown, id)
				changed := res != s.result
				if changed && p.ready[pod.UID] != nil {
					p.ready[pod.UID][c.Name] = res
				}
				s.result = res
				p.mu.Unlock()
				if changed || first {
					w.kick()
				}
			}
		}
	}
}

// kill stops a container whose liveness or startup probe failed; the pod
// worker restarts it as its restart policy says.
func (p *prober) kill(ctx context.Context, w *worker, pod *corev1.Pod, c *corev1.Container, id, kind string) {
	p.m.log.Info("Container failed its probe; restarting it", "pod", pod.Namespace+"/"+pod.Name, "container", c.Name, "probe", kind)
	p.m.event(pod, corev1.EventTypeWarning, "Unhealthy", fmt.Sprintf("container %s failed its %s probe; restarting it", c.Name, kind))
	grace := gracePeriod(pod)
	if c.LivenessProbe != nil && c.LivenessProbe.TerminationGracePeriodSeconds != nil {
		grace = *c.LivenessProbe.TerminationGracePeriodSeconds
	}
	p.m.stopContainer(ctx, pod, &runtimeapi.ContainerStatus{Id: id, Metadata: &runtimeapi.ContainerMetadata{Name: c.Name}}, grace)
	w.kick()
}

// run performs one probe; on failure it says why.
func (p *prober) run(ctx context.Context, c *corev1.Container, id, podIP string, pr *corev1.Probe) (bool, string) {
	timeout := secondsDur(int64(max(pr.TimeoutSeconds, 1)))
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	h := pr.ProbeHandler
	switch {
	case h.Exec != nil:
		r, err := p.m.rt.Runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: h.Exec.Command, Timeout: int64(timeout / time.Second)})
		if err != nil {
			return false, err.Error()
		}
		return r.ExitCode == 0, fmt.Sprintf("exit code %d", r.ExitCode)
	case h.TCPSocket != nil:
		port, err := resolvePort(h.TCPSocket.Port, c)
		if err != nil {
			return false, err.Error()
		}
		host := h.TCPSocket.Host
		if host == "" {
			host = podIP
		}
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return false, err.Error()
		}
		conn.Close()
		return true, ""
	case h.HTTPGet != nil:
		return httpProbe(ctx, h.HTTPGet, c, podIP)
	case h.GRPC != nil:
		conn, err := grpc.NewClient(net.JoinHostPort(podIP, strconv.Itoa(int(h.GRPC.Port))), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return false, err.Error()
		}
		defer conn.Close()
		svc := ""
		if h.GRPC.Service != nil {
			svc = *h.GRPC.Service
		}
		r, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			return false, err.Error()
		}
		return r.Status == healthpb.HealthCheckResponse_SERVING, r.Status.String()
	}
	return false, "no probe handler"
}

func httpProbe(ctx context.Context, g *corev1.HTTPGetAction, c *corev1.Container, podIP string) (bool, string) {
	code, status, err := httpGet(ctx, g, c, podIP, "kube-probe/1.37")
	if err != nil {
		return false, err.Error()
	}
	return code >= 200 && code < 400, status
}

// httpGet performs a probe's or a hook's GET (host default: the pod's
// address; TLS not verified, as the kubelet) and returns the answer's
// status.
func httpGet(ctx context.Context, g *corev1.HTTPGetAction, c *corev1.Container, podIP, agent string) (int, string, error) {
	port, err := resolvePort(g.Port, c)
	if err != nil {
		return 0, "", err
	}
	host := g.Host
	if host == "" {
		host = podIP
	}
	scheme := "http"
	if g.Scheme == corev1.URISchemeHTTPS {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(host, strconv.Itoa(port)), g.Path), nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("User-Agent", agent)
	for _, hd := range g.HTTPHeaders {
		req.Header.Set(hd.Name, hd.Value)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true} //nolint:gosec // probes do not verify, as the kubelet
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, "", err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	resp.Body.Close()
	return resp.StatusCode, resp.Status, nil
}

// resolvePort turns a probe port (number or a container port's name)
// into a number.
func resolvePort(p intstr.IntOrString, c *corev1.Container) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("no container port named %q", p.StrVal)
}
