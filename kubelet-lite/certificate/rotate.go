package certificate

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/connrotation"

	"github.com/hivelet/hivelet/kubelet-lite/metrics"
)

// signTimeout is how long one rotation request may wait for approval and
// signing before a new key is tried, upstream's figure.
const signTimeout = 15 * time.Minute

// maxBackoff caps the wait between failed rotations.
const maxBackoff = 5 * time.Minute

var (
	clientTTL = metrics.Kubelet.NewGauge("kubelet_certificate_manager_client_ttl_seconds",
		"Gauge of the TTL (time-to-live) of the Kubelet's client certificate. The value is in seconds until certificate expiry (negative if already expired).")
	renewErrors = metrics.Kubelet.NewCounter("kubelet_certificate_manager_client_expiration_renew_errors",
		"Counter of certificate renewal errors.")
)

// Rotator keeps the client certificate fresh (rotateCertificates): it
// holds the pair in use, serves it to every connection to the API server
// (Transport), and replaces it with a new key and certificate once 70 to
// 90 % of its lifetime has passed, as the upstream kubelet does.
type Rotator struct {
	store Store
	node  string
	log   *slog.Logger
	cur   atomic.Pointer[tls.Certificate]
	// closeConns ends every connection made with the old pair: the API
	// server authenticates a connection once, at its handshake.
	closeConns func()
	// API files rotation requests with the node's credentials; Bootstrap,
	// when set, once the node's own have expired (a node that was off
	// longer than its certificate's life).
	API, Bootstrap CSRClient
}

// NewRotator starts from the store's pair when it is valid (the newest,
// after a restart), else from initial: the kubeconfig's own.
func NewRotator(store Store, node string, initial *tls.Certificate, log *slog.Logger) (*Rotator, error) {
	r := &Rotator{store: store, node: node, log: log, closeConns: func() {}}
	now := time.Now()
	if pair, err := store.Load(); err == nil && valid(pair, now) == nil {
		initial = pair
	}
	if initial == nil {
		return nil, errors.New("rotate client certificate: the kubeconfig has no client certificate and the certificate directory none either (use --bootstrap-kubeconfig, or turn rotateCertificates off)")
	}
	if initial.Leaf == nil {
		return nil, errors.New("rotate client certificate: the certificate could not be parsed")
	}
	r.cur.Store(initial)
	metrics.Kubelet.OnCollect(func() { clientTTL.Set(time.Until(r.Current().Leaf.NotAfter).Seconds()) })
	return r, nil
}

// Current is the pair in use.
func (r *Rotator) Current() *tls.Certificate { return r.cur.Load() }

// RESTConfig returns base with its client certificate served by the
// rotator, on connections that are closed when the pair changes.
func (r *Rotator) RESTConfig(base *rest.Config) (*rest.Config, error) {
	cfg := rest.CopyConfig(base)
	cfg.TLSClientConfig.CertData, cfg.TLSClientConfig.KeyData = nil, nil
	cfg.TLSClientConfig.CertFile, cfg.TLSClientConfig.KeyFile = "", ""
	tlsCfg, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("rotate client certificate: %w", err)
	}
	if tlsCfg == nil {
		return nil, fmt.Errorf("rotate client certificate: the API server %s is not reached over TLS", cfg.Host)
	}
	tlsCfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return r.Current(), nil }
	dialer := connrotation.NewDialer((&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext)
	r.closeConns = dialer.CloseAll
	cfg.Transport = utilnet.SetTransportDefaults(&http.Transport{
		Proxy: http.ProxyFromEnvironment, TLSHandshakeTimeout: 10 * time.Second, TLSClientConfig: tlsCfg,
		MaxIdleConnsPerHost: 25, DialContext: dialer.DialContext, DisableCompression: cfg.DisableCompression,
	})
	// A Transport replaces every TLS option of the config.
	cfg.TLSClientConfig = rest.TLSClientConfig{}
	return cfg, nil
}

// Run rotates until ctx ends.
func (r *Rotator) Run(ctx context.Context) {
	for {
		leaf := r.Current().Leaf
		at := deadline(leaf.NotBefore, leaf.NotAfter, rand.Float64())
		r.log.Info("Client certificate rotation scheduled", "notAfter", leaf.NotAfter, "rotateAt", at)
		if !sleep(ctx, time.Until(at)) {
			return
		}
		for delay := 2 * time.Second; ; delay = min(2*delay, maxBackoff) {
			err := r.rotate(ctx)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			renewErrors.Inc()
			r.log.Error("Client certificate rotation failed; retrying", "error", err, "retryIn", delay, "notAfter", leaf.NotAfter)
			if !sleep(ctx, delay) {
				return
			}
		}
	}
}

// rotate requests, saves and switches to a new pair.
func (r *Rotator) rotate(ctx context.Context) error {
	api := r.API
	if valid(r.Current(), time.Now()) != nil && r.Bootstrap != nil {
		api = r.Bootstrap
	}
	key, keyPEM, err := newKey()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, signTimeout)
	defer cancel()
	certPEM, err := request(ctx, api, "", r.node, key)
	if err != nil {
		return err
	}
	pair, err := r.store.Save(certPEM, keyPEM)
	if err != nil {
		return err
	}
	r.cur.Store(pair)
	r.closeConns()
	r.log.Info("Client certificate rotated", "notAfter", pair.Leaf.NotAfter, "path", r.store.CurrentPath())
	return nil
}

// deadline is when a certificate valid from notBefore to notAfter is
// replaced: at 70 % of its life plus up to 20 % more (jitter in [0,1)),
// so a fleet's nodes do not all ask at once.
func deadline(notBefore, notAfter time.Time, jitter float64) time.Time {
	life := notAfter.Sub(notBefore)
	return notBefore.Add(time.Duration(float64(life) * (0.7 + 0.2*jitter)))
}

// sleep waits d, false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
