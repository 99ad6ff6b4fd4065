package kubeletlite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"k8s.io/client-go/rest"

	"github.com/hivelet/hivelet/daemon/kubeclient"
	"github.com/hivelet/hivelet/kubelet-lite/certificate"
	"github.com/hivelet/hivelet/kubelet-lite/kubeapi"
)

const userAgent = "hivelet-kubelet"

// apiClient connects to the API server as the node: after TLS
// bootstrapping when --bootstrap-kubeconfig is given, and with a client
// certificate that a Rotator renews when RotateCertificates is on.
func apiClient(ctx context.Context, cfg Config, log *slog.Logger) (*kubeapi.Client, error) {
	store := certificate.Store{Dir: cfg.CertDir}
	if store.Dir == "" {
		store.Dir = filepath.Join(cfg.RootDir, "pki")
	}
	var bootstrapCSRs certificate.CSRClient
	if cfg.BootstrapKubeconfig != "" {
		if cfg.Kubeconfig == kubeclient.InCluster {
			return nil, errors.New("--bootstrap-kubeconfig writes --kubeconfig: give it a file path, not in-cluster")
		}
		bootCfg, err := kubeclient.Config(cfg.BootstrapKubeconfig, userAgent, cfg.KubeAPICompression, "")
		if err != nil {
			return nil, fmt.Errorf("--bootstrap-kubeconfig: %w", err)
		}
		boot, err := kubeapi.New(bootCfg)
		if err != nil {
			return nil, err
		}
		bootstrapCSRs = boot.CertificatesV1().CertificateSigningRequests()
		if err := certificate.Bootstrap(ctx, cfg.Kubeconfig, bootCfg, bootstrapCSRs, store, cfg.NodeName, log); err != nil {
			return nil, err
		}
	}
	restCfg, err := kubeclient.Config(cfg.Kubeconfig, userAgent, cfg.KubeAPICompression, "")
	if err != nil {
		return nil, err
	}
	if !cfg.RotateCertificates {
		return kubeapi.New(restCfg)
	}
	rot, err := rotator(restCfg, store, cfg.NodeName, log)
	if err != nil {
		return nil, err
	}
	if restCfg, err = rot.RESTConfig(restCfg); err != nil {
		return nil, err
	}
	client, err := kubeapi.New(restCfg)
	if err != nil {
		return nil, err
	}
	rot.API, rot.Bootstrap = client.CertificatesV1().CertificateSigningRequests(), bootstrapCSRs
	go rot.Run(ctx)
	return client, nil
}

// rotator starts certificate rotation from the kubeconfig's pair, or the
// newer one the store holds.
func rotator(restCfg *rest.Config, store certificate.Store, node string, log *slog.Logger) (*certificate.Rotator, error) {
	pair, err := certificate.PairOf(restCfg)
	if err != nil {
		log.Warn("The kubeconfig's client certificate cannot be read; rotation starts from the certificate directory's", "error", err)
	}
	return certificate.NewRotator(store, node, pair, log)
}
