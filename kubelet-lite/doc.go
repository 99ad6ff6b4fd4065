// Package kubeletlite is hivelet's lean kubelet: it registers its Node,
// keeps a Lease, and runs the Pods bound to it (from the API server and
// from a static manifests directory) through CRI, reporting their status.
// Subpackages: cri (the runtime client), node (registration, lease,
// conditions), pods (sources, workers, PLEG, status).
package kubeletlite
