// Package healthcheck serves the healthCheckNodePort of Services with
// externalTrafficPolicy Local, as kube-proxy does: external load balancers
// probe every node and send traffic only to nodes that answer 200, which
// are the nodes with local endpoints.
package healthcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
	"github.com/hivelet/hivelet/daemon/logfields"
)

// Servers keeps one HTTP listener per health-check port.
type Servers struct {
	log  *slog.Logger
	host string // listen address without port; "" for all

	mu    sync.Mutex
	ports map[uint16]*server        // guarded by mu
	owner map[lb.ServiceName]uint16 // guarded by mu
}

type server struct {
	srv   *http.Server
	mu    sync.Mutex
	name  lb.ServiceName // guarded by mu
	local int            // guarded by mu
}

// New returns Servers listening on host (empty: every address).
func New(host string, log *slog.Logger) *Servers {
	return &Servers{log: log, host: host, ports: map[uint16]*server{}, owner: map[lb.ServiceName]uint16{}}
}

// Update records what Service name's health-check port should report; a
// nil h stops serving it. A port that cannot be opened is logged and tried
// again on the next update.
func (s *Servers) Update(name lb.ServiceName, h *lb.Health) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.owner[name]; ok && (h == nil || old != h.Port) {
		s.stop(old)
		delete(s.owner, name)
	}
	if h == nil {
		return
	}
	srv := s.ports[h.Port]
	if srv == nil {
		var err error
		if srv, err = s.start(h.Port); err != nil {
			s.log.Warn("Cannot serve a healthCheckNodePort; will retry", logfields.Service, name.String(), logfields.Error, err)
			return
		}
		s.ports[h.Port] = srv
	}
	s.owner[name] = h.Port
	srv.mu.Lock()
	srv.name, srv.local = name, h.LocalEndpoints
	srv.mu.Unlock()
}

// Retain stops serving every Service not in keep (after a full sync).
func (s *Servers) Retain(keep map[lb.ServiceName]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, port := range s.owner {
		if !keep[name] {
			s.stop(port)
			delete(s.owner, name)
		}
	}
}

// Close stops every listener.
func (s *Servers) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for port := range s.ports {
		s.stop(port)
	}
}

func (s *Servers) stop(port uint16) {
	if srv := s.ports[port]; srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.srv.Shutdown(ctx)
		delete(s.ports, port)
	}
}

func (s *Servers) start(port uint16) (*server, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(s.host, strconv.Itoa(int(port))))
	if err != nil {
		return nil, fmt.Errorf("listen on health-check port %d: %w", port, err)
	}
	srv := &server{}
	srv.srv = &http.Server{Handler: srv, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("Health-check server stopped", logfields.Addr, ln.Addr().String(), logfields.Error, err)
		}
	}()
	return srv, nil
}

// reply is kube-proxy's health-check body.
type reply struct {
	Service struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"service"`
	LocalEndpoints      int  `json:"localEndpoints"`
	ServiceProxyHealthy bool `json:"serviceProxyHealthy"`
}

func (srv *server) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	srv.mu.Lock()
	var r reply
	r.Service.Namespace, r.Service.Name, r.LocalEndpoints = srv.name.Namespace, srv.name.Name, srv.local
	srv.mu.Unlock()
	r.ServiceProxyHealthy = true
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Load-Balancing-Endpoint-Weight", strconv.Itoa(r.LocalEndpoints))
	if r.LocalEndpoints == 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
	} else {
		w.WriteHeader(http.StatusOK)
	}
	_ = json.NewEncoder(w).Encode(r)
}
