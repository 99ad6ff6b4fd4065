package kubeletlite

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hivelet/hivelet/kubelet-lite/cri"
	"github.com/hivelet/hivelet/kubelet-lite/kubeapi"
	"github.com/hivelet/hivelet/kubelet-lite/logs"
	"github.com/hivelet/hivelet/kubelet-lite/pods"
	"github.com/hivelet/hivelet/kubelet-lite/stats"
)

// serveKubelet runs the node's kubelet API (the upstream kubelet's :10250)
// over TLS: container logs as the API server asks for them for `kubectl
// logs`, and exec, attach and port-forward (streaming.go). Callers are
// authenticated by a client certificate from --client-ca-file or, with
// --authentication-token-webhook, a bearer token, and authorized as
// --authorization-mode says (auth.go). With neither a client CA nor
// token authentication it does not serve: an unauthenticated kubelet
// API hands out every pod.
func serveKubelet(ctx context.Context, cfg Config, rt *cri.Client, client *kubeapi.Client, m *pods.Manager, log *slog.Logger) error {
	if cfg.ClientCAFile == "" && !cfg.AuthenticationTokenWebhook && !cfg.AnonymousAuth || cfg.Port == 0 {
		log.Info("Not serving the kubelet API: pass --client-ca-file (or --authentication-token-webhook) to enable it")
		return nil
	}
	mode := authzMode(cfg)
	if mode != AuthzAlwaysAllow && mode != AuthzWebhook {
		return fmt.Errorf("--authorization-mode %q: want AlwaysAllow or Webhook", mode)
	}
	if (mode == AuthzWebhook || cfg.AuthenticationTokenWebhook) && client == nil {
		return errors.New("--authorization-mode Webhook and --authentication-token-webhook ask the API server: pass --kubeconfig")
	}
	// HTTP/2 for plain requests (logs, stats: one connection, no new
	// handshake per request); clients that upgrade (exec, attach,
	// port-forward) offer only HTTP/1.1 and get it.
	tlsCfg := &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	if cfg.AuthenticationTokenWebhook || cfg.AnonymousAuth || cfg.ClientCAFile == "" {
		tlsCfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	// No CA file: no certificate is accepted (a nil pool would mean the
	// system's roots).
	tlsCfg.ClientCAs = x509.NewCertPool()
	if cfg.ClientCAFile != "" {
		caPEM, err := os.ReadFile(cfg.ClientCAFile)
		if err != nil {
			return fmt.Errorf("read --client-ca-file: %w", err)
		}
		if !tlsCfg.ClientCAs.AppendCertsFromPEM(caPEM) {
			return fmt.Errorf("--client-ca-file %s: no PEM certificates", cfg.ClientCAFile)
		}
	}
	cert, err := servingCert(cfg)
	if err != nil {
		return err
	}
	tlsCfg.Certificates = []tls.Certificate{cert}
	var reviews reviewer
	if client != nil {
		reviews = client
	}
	if cfg.AnonymousAuth && mode == AuthzAlwaysAllow {
		log.Warn("The kubelet API serves anyone who can reach it: --anonymous-auth with --authorization-mode AlwaysAllow; use Webhook")
	}
	auth := newAPIAuth(cfg.NodeName, cfg.AuthenticationTokenWebhook, cfg.AnonymousAuth, mode, reviews)
	addr := net.JoinHostPort(cfg.Address, strconv.Itoa(cfg.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (--address, --port)", addr, err)
	}
	logsDir := cfg.PodLogsDir
	if logsDir == "" {
		logsDir = pods.DefaultPodLogsDir
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{container}", func(w http.ResponseWriter, r *http.Request) {
		containerLogs(w, r, rt, logsDir)
	})
	mux.HandleFunc("GET /configz", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, configz(cfg), log) })
	streamingRoutes(mux, rt)
	statsRoutes(mux, stats.NewProvider(cfg.NodeName, cfg.RootDir, rt), m, log)
	// The upstream kubelet's limits: streams (exec, logs -f) may last
	// hours, headers may not dawdle.
	srv := &http.Server{Handler: auth.wrap(mux), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 4 * time.Hour, WriteTimeout: 4 * time.Hour,
		IdleTimeout: 90 * time.Second, MaxHeaderBytes: 1 << 20,
		TLSConfig: tlsCfg}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("Kubelet API stopped", "error", err)
		}
	}()
	log.Info("Serving the kubelet API", "addr", ln.Addr().String(), "tokenAuthentication", cfg.AuthenticationTokenWebhook, "anonymous", cfg.AnonymousAuth, "authorization", mode)
	return nil
}

// servingCert is --tls-cert-file and --tls-private-key-file, or a
// self-signed certificate for the node's name.
func servingCert(cfg Config) (tls.Certificate, error) {
	if cfg.TLSCertFile == "" && cfg.TLSPrivateKeyFile == "" {
		return selfSigned(cfg.NodeName)
	}
	c, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSPrivateKeyFile)
	if err != nil {
		return c, fmt.Errorf("load --tls-cert-file/--tls-private-key-file: %w", err)
	}
	return c, nil
}

// selfSigned makes the serving certificate, as the upstream kubelet does
// without TLS bootstrap.
func selfSigned(node string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: node + "@kubelet-lite"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour), DNSNames: []string{node},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("create the serving certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// containerLogs serves a container's log (or, with previous=true, its
// last terminated instance's) from the CRI log file, tailLines honoured.
func containerLogs(w http.ResponseWriter, r *http.Request, rt *cri.Client, logsDir string) {
	ns, pod, name := r.PathValue("ns"), r.PathValue("pod"), r.PathValue("container")
	ctx, cancel := cri.Ctx(r.Context())
	defer cancel()
	list, err := rt.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{LabelSelector: map[string]string{
		pods.LabelPodNamespace: ns, pods.LabelPodName: pod, pods.LabelContainer: name}}})
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	var newest, previous *runtimeapi.Container
	for _, c := range list.Containers {
		if newest == nil || c.Metadata.Attempt > newest.Metadata.Attempt {
			newest, previous = c, newest
		} else if previous == nil || c.Metadata.Attempt > previous.Metadata.Attempt {
			previous = c
		}
	}
	c := newest
	if flag(r.URL.Query(), "previous") {
		c = previous
	}
	if c == nil {
		http.Error(w, fmt.Sprintf("container %s of pod %s/%s not found", name, ns, pod), http.StatusNotFound)
		return
	}
	// The log is where kubelet-lite told the runtime to write it; ask the
	// runtime only when it is not there (a container of another kubelet).
	// Built from the runtime's labels (names kubelet-lite validated), never
	// from the request's path.
	lb := c.Labels
	logPath := filepath.Join(logsDir, lb[pods.LabelPodNamespace]+"_"+lb[pods.LabelPodName]+"_"+lb[pods.LabelPodUID], lb[pods.LabelContainer],
		strconv.Itoa(int(c.Metadata.Attempt))+".log")
	if fi, err := os.Lstat(logPath); err != nil || !fi.Mode().IsRegular() {
		st, err := rt.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: c.Id})
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		logPath = st.Status.LogPath
	}
	opts, err := logOptions(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id := c.Id
	running := func() bool {
		ctx, cancel := cri.Ctx(r.Context())
		defer cancel()
		st, err := rt.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
		return err == nil && st.Status.State == runtimeapi.ContainerState_CONTAINER_RUNNING
	}
	w.Header().Set("Content-Type", "text/plain")
	if err := logs.Stream(r.Context(), flusher{w}, logPath, opts, running); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

// flusher sends each followed chunk at once.
type flusher struct{ http.ResponseWriter }

func (f flusher) Flush() {
	if fl, ok := f.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}

// logOptions reads the kubelet API's log parameters: follow, timestamps,
// tailLines, limitBytes, sinceSeconds, sinceTime (RFC 3339).
func logOptions(q url.Values) (logs.Options, error) {
	o := logs.Options{Follow: flag(q, "follow"), Timestamps: flag(q, "timestamps"), TailLines: -1}
	num := func(name string, dst *int64) error {
		if v := q.Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return fmt.Errorf("%s=%q: want a non-negative number", name, v)
			}
			*dst = n
		}
		return nil
	}
	var since int64
	if err := errors.Join(num("tailLines", &o.TailLines), num("limitBytes", &o.LimitBytes), num("sinceSeconds", &since)); err != nil {
		return o, err
	}
	if since > 0 {
		o.Since = time.Now().Add(-time.Duration(since) * time.Second)
	}
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return o, fmt.Errorf("sinceTime=%q: want RFC 3339", v)
		}
		o.Since = t
	}
	return o, nil
}
