package k8s

import (
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// InCluster is the kubeconfig value that selects the pod's service account.
const InCluster = "in-cluster"

// NewClient builds a clientset from a kubeconfig file, or from the pod's
// service account when kubeconfig is InCluster.
func NewClient(kubeconfig string) (kubernetes.Interface, error) {
	var (
		cfg *rest.Config
		err error
	)
	if kubeconfig == InCluster {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %q: %w", kubeconfig, err)
	}
	cfg.UserAgent = "hivelet-agent"
	// Protobuf, as kube-proxy uses: the initial list of every Service and
	// EndpointSlice decodes several times faster than JSON.
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	// A node agent lists every Service and EndpointSlice at start: the
	// client-side limiter must not make a 100k-object start take minutes.
	cfg.QPS, cfg.Burst = 50, 100
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create Kubernetes client: %w", err)
	}
	return client, nil
}
