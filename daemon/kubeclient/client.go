// Package kubeclient builds the Kubernetes client configuration hivelet's
// components share: from a kubeconfig or the pod's service account,
// protobuf, with a node agent's rate limits. It links no typed client:
// the agent adds client-go's clientset, kubelet-lite its own lean client.
package kubeclient

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// InCluster is the kubeconfig value that selects the pod's service account.
const InCluster = "in-cluster"

// Config loads a kubeconfig file, or the pod's service account when
// kubeconfig is InCluster; userAgent names the component. Responses come
// uncompressed unless compress is set: a node reaches its API server over
// a fast network, where gzip costs both sides more CPU than the bytes it
// saves (at 10k Services the initial lists arrive ~45 ms sooner without
// it), as the API server's own control-plane clients do. A kubeconfig's
// disable-compression: true holds either way.
//
// server, when set, replaces the API server's address: the kubeconfig's,
// or in-cluster the kubernetes Service's (KUBERNETES_SERVICE_HOST), which
// a kube-proxy replacement cannot use before it has programmed it.
func Config(kubeconfig, userAgent string, compress bool, server string) (*rest.Config, error) {
	var (
		cfg *rest.Config
		err error
	)
	switch {
	case kubeconfig == InCluster && server != "":
		cfg, err = inClusterAt(server)
	case kubeconfig == InCluster:
		cfg, err = rest.InClusterConfig()
	default:
		cfg, err = clientcmd.BuildConfigFromFlags(server, kubeconfig)
	}
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %q: %w", kubeconfig, err)
	}
	cfg.UserAgent = userAgent
	if !compress {
		cfg.DisableCompression = true
	}
	// Protobuf, as kube-proxy uses: the initial list of every Service and
	// EndpointSlice decodes several times faster than JSON.
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	// A node agent lists every Service and EndpointSlice at start: the
	// client-side limiter must not make a 100k-object start take minutes.
	cfg.QPS, cfg.Burst = 50, 100
	return cfg, nil
}

// The service account's files, as every pod has them.
const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// inClusterAt is the pod's service account against the API server at
// server instead of the kubernetes Service.
func inClusterAt(server string) (*rest.Config, error) {
	if _, err := os.Stat(filepath.Join(saDir, "token")); err != nil {
		return nil, fmt.Errorf("no service account token: %w", err)
	}
	return &rest.Config{Host: server, BearerTokenFile: filepath.Join(saDir, "token"),
		TLSClientConfig: rest.TLSClientConfig{CAFile: filepath.Join(saDir, "ca.crt")}}, nil
}
