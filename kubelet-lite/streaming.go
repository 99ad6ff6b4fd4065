package kubeletlite

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hivelet/hivelet/kubelet-lite/cri"
	"github.com/hivelet/hivelet/kubelet-lite/pods"
)

// The streaming endpoints of the kubelet API (`kubectl exec`, `attach`,
// `port-forward`): the runtime is asked for a one-time URL on its own
// streaming server (CRI Exec/Attach/PortForward) and the upgraded
// connection (SPDY or WebSocket) is proxied there, so the API server
// never needs a route to the runtime, as upstream proxies by default.
func streamingRoutes(mux *http.ServeMux, rt *cri.Client) {
	// target finds the running container and the streams asked for; a
	// false ok means the error answer was written.
	target := func(w http.ResponseWriter, r *http.Request) (id string, st streamOpts, ok bool) {
		id, err := containerID(r.Context(), rt, r.PathValue("ns"), r.PathValue("pod"), r.PathValue("container"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return "", st, false
		}
		if st, err = streams(r.URL.Query()); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return "", st, false
		}
		return id, st, true
	}
	execH := func(w http.ResponseWriter, r *http.Request) {
		cmd := r.URL.Query()[corev1.ExecCommandParam]
		if len(cmd) == 0 {
			http.Error(w, "exec: no command given (?command=...)", http.StatusBadRequest)
			return
		}
		id, st, ok := target(w, r)
		if !ok {
			return
		}
		ctx, cancel := cri.Ctx(r.Context())
		defer cancel()
		resp, err := rt.Runtime.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: id, Cmd: cmd, Tty: st.tty, Stdin: st.stdin, Stdout: st.stdout, Stderr: st.stderr})
		if err != nil {
			http.Error(w, fmt.Sprintf("exec in container %s: %v", id, err), http.StatusInternalServerError)
			return
		}
		proxyStream(w, r, resp.Url)
	}
	attachH := func(w http.ResponseWriter, r *http.Request) {
		id, st, ok := target(w, r)
		if !ok {
			return
		}
		ctx, cancel := cri.Ctx(r.Context())
		defer cancel()
		resp, err := rt.Runtime.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: id, Tty: st.tty, Stdin: st.stdin, Stdout: st.stdout, Stderr: st.stderr})
		if err != nil {
			http.Error(w, fmt.Sprintf("attach to container %s: %v", id, err), http.StatusInternalServerError)
			return
		}
		proxyStream(w, r, resp.Url)
	}
	portForwardH := func(w http.ResponseWriter, r *http.Request) {
		sb, err := sandboxID(r.Context(), rt, r.PathValue("ns"), r.PathValue("pod"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		var ports []int32
		for _, p := range r.URL.Query()["port"] {
			n, err := strconv.ParseUint(p, 10, 16)
			if err != nil || n == 0 {
				http.Error(w, fmt.Sprintf("port-forward: port %q is not a port number", p), http.StatusBadRequest)
				return
			}
			ports = append(ports, int32(n))
		}
		ctx, cancel := cri.Ctx(r.Context())
		defer cancel()
		resp, err := rt.Runtime.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: sb, Port: ports})
		if err != nil {
			http.Error(w, fmt.Sprintf("port-forward to pod sandbox %s: %v", sb, err), http.StatusInternalServerError)
			return
		}
		proxyStream(w, r, resp.Url)
	}
	for _, p := range []string{"/exec/{ns}/{pod}/{container}", "/exec/{ns}/{pod}/{uid}/{container}"} {
		mux.HandleFunc("GET "+p, execH)
		mux.HandleFunc("POST "+p, execH)
	}
	for _, p := range []string{"/attach/{ns}/{pod}/{container}", "/attach/{ns}/{pod}/{uid}/{container}"} {
		mux.HandleFunc("GET "+p, attachH)
		mux.HandleFunc("POST "+p, attachH)
	}
	for _, p := range []string{"/portForward/{ns}/{pod}", "/portForward/{ns}/{pod}/{uid}"} {
		mux.HandleFunc("GET "+p, portForwardH)
		mux.HandleFunc("POST "+p, portForwardH)
	}
}

// streamOpts are the streams an exec or attach asks for.
type streamOpts struct{ stdin, stdout, stderr, tty bool }

// streams reads them from the query as the API server writes them
// (input, output, error, tty = "1"), with upstream's rules: a TTY has no
// separate stderr, and at least one stream is needed.
func streams(q url.Values) (streamOpts, error) {
	s := streamOpts{stdin: flag(q, corev1.ExecStdinParam), stdout: flag(q, corev1.ExecStdoutParam), stderr: flag(q, corev1.ExecStderrParam), tty: flag(q, corev1.ExecTTYParam)}
	if s.tty {
		s.stderr = false
	}
	if !s.stdin && !s.stdout && !s.stderr {
		return s, fmt.Errorf("you must specify at least 1 of stdin, stdout, stderr (query parameters %s, %s, %s)", corev1.ExecStdinParam, corev1.ExecStdoutParam, corev1.ExecStderrParam)
	}
	return s, nil
}

// flag reads a boolean query parameter as the kubelet does ("1", "true").
func flag(q url.Values, name string) bool {
	v := q.Get(name)
	return v == "1" || v == "true"
}

// proxyStream hands the request, upgrade included, to the runtime's
// one-time streaming URL and copies both ways until either side closes.
func proxyStream(w http.ResponseWriter, r *http.Request, target string) {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		http.Error(w, fmt.Sprintf("the runtime's streaming URL %q is not usable: %v", target, err), http.StatusInternalServerError)
		return
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			out := *u
			pr.Out.URL, pr.Out.Host = &out, ""
		},
		FlushInterval: -1,
	}
	rp.ServeHTTP(w, r)
}

// containerID is the newest running container of that name in the pod.
func containerID(ctx context.Context, rt *cri.Client, ns, pod, name string) (string, error) {
	ctx, cancel := cri.Ctx(ctx)
	defer cancel()
	list, err := rt.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		State:         &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
		LabelSelector: map[string]string{pods.LabelPodNamespace: ns, pods.LabelPodName: pod, pods.LabelContainer: name}}})
	if err != nil {
		return "", fmt.Errorf("list containers: %w", err)
	}
	if len(list.Containers) == 0 {
		return "", fmt.Errorf("container %s of pod %s/%s is not running", name, ns, pod)
	}
	newest := slices.MaxFunc(list.Containers, func(a, b *runtimeapi.Container) int { return int(a.Metadata.Attempt) - int(b.Metadata.Attempt) })
	return newest.Id, nil
}

// sandboxID is the pod's ready sandbox.
func sandboxID(ctx context.Context, rt *cri.Client, ns, pod string) (string, error) {
	ctx, cancel := cri.Ctx(ctx)
	defer cancel()
	list, err := rt.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		State:         &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY},
		LabelSelector: map[string]string{pods.LabelPodNamespace: ns, pods.LabelPodName: pod}}})
	if err != nil {
		return "", fmt.Errorf("list pod sandboxes: %w", err)
	}
	if len(list.Items) == 0 {
		return "", fmt.Errorf("pod %s/%s has no running sandbox", ns, pod)
	}
	return list.Items[0].Id, nil
}
