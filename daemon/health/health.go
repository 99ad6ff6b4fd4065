// Package health serves /healthz and /livez the way kube-proxy does on
// --healthz-bind-address: healthy once the first sync is done and as long
// as no change has waited for a sync longer than the timeout.
package health

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// Tracker records queued changes and completed syncs.
type Tracker struct {
	timeout time.Duration
	now     func() time.Time

	mu          sync.Mutex
	lastUpdated time.Time // last successful sync; guarded by mu
	oldestQueue time.Time // first change not yet synced; zero when none; guarded by mu
}

// NewTracker returns a tracker that reports unhealthy when a queued change
// waits longer than timeout.
func NewTracker(timeout time.Duration) *Tracker {
	return &Tracker{timeout: timeout, now: time.Now}
}

// Queued notes that a change waits for a sync.
func (t *Tracker) Queued() {
	t.mu.Lock()
	if t.oldestQueue.IsZero() {
		t.oldestQueue = t.now()
	}
	t.mu.Unlock()
}

// Synced notes a successful sync that started at start: changes queued
// before it are done.
func (t *Tracker) Synced(start time.Time) {
	t.mu.Lock()
	t.lastUpdated = t.now()
	if !t.oldestQueue.IsZero() && !t.oldestQueue.After(start) {
		t.oldestQueue = time.Time{}
	}
	t.mu.Unlock()
}

type status struct {
	LastUpdated time.Time `json:"lastUpdated"`
	CurrentTime time.Time `json:"currentTime"`
	Healthy     bool      `json:"healthy"`
	Reason      string    `json:"reason,omitempty"`
}

func (t *Tracker) status() status {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	s := status{LastUpdated: t.lastUpdated, CurrentTime: now, Healthy: true}
	switch {
	case t.lastUpdated.IsZero():
		s.Healthy, s.Reason = false, "no sync completed yet"
	case !t.oldestQueue.IsZero() && now.Sub(t.oldestQueue) > t.timeout:
		s.Healthy, s.Reason = false, "a change has waited more than "+t.timeout.String()+" for a sync"
	}
	return s
}

// ServeHTTP answers 200 when healthy and 503 otherwise, with a JSON body.
func (t *Tracker) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s := t.status()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if !s.Healthy {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(s)
}
