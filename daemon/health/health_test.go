package health

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestHealthFollowsSyncs(t *testing.T) {
	now := time.Unix(1000, 0)
	tr := NewTracker(time.Minute)
	tr.now = func() time.Time { return now }
	check := func(want int, what string) {
		t.Helper()
		rec := httptest.NewRecorder()
		tr.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		var s status
		if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
			t.Fatal(err)
		}
		if rec.Code != want {
			t.Errorf("%s: code %d (%+v), want %d", what, rec.Code, s, want)
		}
	}
	check(http.StatusServiceUnavailable, "before the first sync")
	tr.Synced(now)
	check(http.StatusOK, "after the first sync")

	tr.Queued()
	now = now.Add(30 * time.Second)
	check(http.StatusOK, "a change waiting less than the timeout")
	now = now.Add(31 * time.Second)
	check(http.StatusServiceUnavailable, "a change waiting more than the timeout")

	start := now
	now = now.Add(time.Second)
	tr.Synced(start)
	check(http.StatusOK, "after the sync that took the change")

	// A change queued while a sync runs is not covered by it.
	start = now
	now = now.Add(time.Second)
	tr.Queued()
	tr.Synced(start)
	now = now.Add(2 * time.Minute)
	check(http.StatusServiceUnavailable, "a change queued during a sync and never synced")
}
