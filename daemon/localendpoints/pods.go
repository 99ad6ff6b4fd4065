// Package localendpoints gives the Services read from a manifests
// directory the endpoints an EndpointSlice controller would give them,
// found among the pods this node runs. It is what `hivelet node` needs with
// no API server: static pods behind a Service, on one edge node.
package localendpoints

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
)

// Pods is where the kubelet half of `hivelet node` tells the agent half
// about its pods: which exist, with their last status, and when that
// changed. Safe for concurrent use.
type Pods struct {
	mu      sync.Mutex
	list    func() []corev1.Pod
	synced  func() bool
	changed chan struct{}
}

// NewPods returns an empty Pods: no pod, and not synced, until SetSource.
func NewPods() *Pods { return &Pods{changed: make(chan struct{}, 1)} }

// SetSource hands over the kubelet's pod list, and synced, which is true
// once every pod the kubelet knows at start has a status (after a restart:
// the running pods have been adopted, so their endpoints stay).
func (p *Pods) SetSource(list func() []corev1.Pod, synced func() bool) {
	p.mu.Lock()
	p.list, p.synced = list, synced
	p.mu.Unlock()
	p.Changed()
}

// Changed says a pod appeared, went, or its status changed. It never
// blocks: changes arriving together are handled once.
func (p *Pods) Changed() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

func (p *Pods) snapshot() []corev1.Pod {
	p.mu.Lock()
	list := p.list
	p.mu.Unlock()
	if list == nil {
		return nil
	}
	return list()
}

func (p *Pods) isSynced() bool {
	p.mu.Lock()
	synced := p.synced
	p.mu.Unlock()
	return synced != nil && synced()
}
