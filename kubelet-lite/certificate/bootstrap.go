package certificate

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// bootstrapKeyName holds the key of a bootstrap request until its
// certificate arrives, so a restart waits on the same request.
const bootstrapKeyName = "kubelet-client.key.tmp"

// Bootstrap gives the node a kubeconfig with credentials of its own
// (TLS bootstrapping). A kubeconfig that exists with a certificate valid
// now, or with other credentials, is left alone. Otherwise a pair already
// in store is used if valid, or a new one is requested through api
// (which speaks with the bootstrap kubeconfig's credentials) and saved;
// then kubeconfig is written naming the store's current pair, with
// bootstrap's server and certificate authority. It waits, as the upstream
// kubelet does, until the request is approved and signed.
func Bootstrap(ctx context.Context, kubeconfig string, bootstrap *rest.Config, api CSRClient, store Store, node string, log *slog.Logger) error {
	switch reason, err := needsBootstrap(kubeconfig, time.Now()); {
	case err != nil:
		return err
	case reason == "":
		return nil
	default:
		log.Info("Bootstrapping the node's client certificate", "reason", reason, "kubeconfig", kubeconfig, "certDir", store.Dir)
	}
	if pair, err := store.Load(); err == nil && valid(pair, time.Now()) == nil {
		log.Info("Using the client certificate already in the certificate directory", "path", store.CurrentPath(), "notAfter", pair.Leaf.NotAfter)
		return writeKubeconfig(kubeconfig, bootstrap, store.CurrentPath())
	}
	keyPath := filepath.Join(store.Dir, bootstrapKeyName)
	keyPEM, err := os.ReadFile(keyPath)
	key, perr := parseKey(keyPEM)
	if err != nil || perr != nil {
		if key, keyPEM, err = newKey(); err != nil {
			return err
		}
		if err := os.MkdirAll(store.Dir, 0o700); err != nil {
			return fmt.Errorf("create certificate directory: %w", err)
		}
		if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
			return fmt.Errorf("write bootstrap key: %w", err)
		}
	}
	name, err := bootstrapName(node, key)
	if err != nil {
		return err
	}
	log.Info("Waiting for the certificate request to be approved and signed", "csr", name, "signer", SignerName)
	certPEM, err := request(ctx, api, name, node, key)
	if err != nil {
		return fmt.Errorf("bootstrap client certificate: %w (approve it with kubectl certificate approve %s, or check the bootstrap credentials)", err, name)
	}
	pair, err := store.Save(certPEM, keyPEM)
	if err != nil {
		return err
	}
	_ = os.Remove(keyPath)
	log.Info("Client certificate issued", "csr", name, "notAfter", pair.Leaf.NotAfter, "path", store.CurrentPath())
	return writeKubeconfig(kubeconfig, bootstrap, store.CurrentPath())
}

// needsBootstrap says why kubeconfig cannot be used as it is ("" when it
// can). An unreadable or unparsable file is an error: it is the
// operator's, and not to be overwritten.
func needsBootstrap(kubeconfig string, now time.Time) (string, error) {
	if _, err := os.Stat(kubeconfig); errors.Is(err, os.ErrNotExist) {
		return "no kubeconfig yet", nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return "", fmt.Errorf("load kubeconfig %q: %w (delete it to bootstrap again)", kubeconfig, err)
	}
	pair, err := PairOf(cfg)
	if err != nil {
		return "its client certificate cannot be read: " + err.Error(), nil
	}
	if pair == nil {
		return "", nil
	}
	if err := valid(pair, now); err != nil {
		return err.Error(), nil
	}
	return "", nil
}

// PairOf reads the client certificate a rest config carries, in data or
// in files; nil when it has none (token or other credentials).
func PairOf(cfg *rest.Config) (*tls.Certificate, error) {
	tc := cfg.TLSClientConfig
	certPEM, keyPEM := tc.CertData, tc.KeyData
	var err error
	if len(certPEM) == 0 && tc.CertFile != "" {
		if certPEM, err = os.ReadFile(tc.CertFile); err != nil {
			return nil, err
		}
	}
	if len(keyPEM) == 0 && tc.KeyFile != "" {
		if keyPEM, err = os.ReadFile(tc.KeyFile); err != nil {
			return nil, err
		}
	}
	if len(certPEM) == 0 && len(keyPEM) == 0 {
		return nil, nil
	}
	return parsePair(certPEM, keyPEM)
}

// writeKubeconfig writes the node's kubeconfig: bootstrap's server and
// certificate authority, the pair at pairPath as the user. Written to a
// temporary file and renamed, so a crash leaves the old file or the new.
func writeKubeconfig(path string, bootstrap *rest.Config, pairPath string) error {
	ca := bootstrap.TLSClientConfig.CAData
	if len(ca) == 0 && bootstrap.TLSClientConfig.CAFile != "" {
		var err error
		if ca, err = os.ReadFile(bootstrap.TLSClientConfig.CAFile); err != nil {
			return fmt.Errorf("read the bootstrap kubeconfig's certificate authority: %w", err)
		}
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["default-cluster"] = &clientcmdapi.Cluster{Server: bootstrap.Host, CertificateAuthorityData: ca,
		TLSServerName: bootstrap.TLSClientConfig.ServerName, InsecureSkipTLSVerify: bootstrap.TLSClientConfig.Insecure}
	cfg.AuthInfos["default-auth"] = &clientcmdapi.AuthInfo{ClientCertificate: pairPath, ClientKey: pairPath}
	cfg.Contexts["default-context"] = &clientcmdapi.Context{Cluster: "default-cluster", AuthInfo: "default-auth", Namespace: "default"}
	cfg.CurrentContext = "default-context"
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	tmp := path + ".tmp"
	if err := clientcmd.WriteToFile(*cfg, tmp); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}
