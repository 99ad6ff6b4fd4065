package pods

import (
	"fmt"
	"time"
)

// plegStale is how old the last successful relist may be before the
// kubelet reports itself unhealthy (the upstream kubelet uses 3 min).
const plegStale = 3 * time.Minute

// Healthy reports whether the runtime relist is recent.
func (m *Manager) Healthy() error {
	m.mu.Lock()
	last := m.lastRelist
	m.mu.Unlock()
	if last.IsZero() {
		return fmt.Errorf("PLEG has not relisted the container runtime yet")
	}
	if age := time.Since(last); age > plegStale {
		return fmt.Errorf("PLEG is not healthy: last relist %s ago (threshold %s)", age.Round(time.Second), plegStale)
	}
	return nil
}
