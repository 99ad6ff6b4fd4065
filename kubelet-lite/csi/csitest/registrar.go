// Package csitest serves what a CSI node plugin's node-driver-registrar
// sidecar serves, the plugin watcher's registration socket, for tests
// that run a CSI driver (csi-test's mock) beside kubelet-lite.
package csitest

import (
	"context"
	"net"
	"os"
	"sync"

	"google.golang.org/grpc"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// Registrar answers GetInfo with Info and records what the kubelet says
// of the registration.
type Registrar struct {
	registerapi.UnimplementedRegistrationServer
	Info *registerapi.PluginInfo

	mu       sync.Mutex
	statuses []*registerapi.RegistrationStatus
	srv      *grpc.Server
}

// NewRegistrar returns a registrar for a CSI driver at endpoint.
func NewRegistrar(name, endpoint string) *Registrar {
	return &Registrar{Info: &registerapi.PluginInfo{Type: registerapi.CSIPlugin, Name: name, Endpoint: endpoint, SupportedVersions: []string{"1.0.0"}}}
}

// Serve listens on socket (in the kubelet's plugins_registry) until Stop.
func (r *Registrar) Serve(socket string) error {
	_ = os.Remove(socket)
	l, err := net.Listen("unix", socket)
	if err != nil {
		return err
	}
	r.srv = grpc.NewServer()
	registerapi.RegisterRegistrationServer(r.srv, r)
	go func() { _ = r.srv.Serve(l) }()
	return nil
}

// Stop stops serving and removes the socket, as a stopped registrar does.
func (r *Registrar) Stop() {
	if r.srv != nil {
		r.srv.Stop()
	}
}

func (r *Registrar) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	i := r.Info
	return &registerapi.PluginInfo{Type: i.Type, Name: i.Name, Endpoint: i.Endpoint, SupportedVersions: i.SupportedVersions}, nil
}

func (r *Registrar) NotifyRegistrationStatus(_ context.Context, s *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	r.mu.Lock()
	r.statuses = append(r.statuses, s)
	r.mu.Unlock()
	return &registerapi.RegistrationStatusResponse{}, nil
}

// Last is the latest registration status the kubelet sent, or nil.
func (r *Registrar) Last() *registerapi.RegistrationStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.statuses) == 0 {
		return nil
	}
	return r.statuses[len(r.statuses)-1]
}
