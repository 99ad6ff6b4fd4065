package deviceplugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/types"
)

// checkpointName is the assignments file in the plugin directory,
// upstream's name (its format is kubelet-lite's own).
const checkpointName = "kubelet_internal_checkpoint"

// assignments are the device IDs given out: pod UID → container →
// resource → IDs.
type assignments map[types.UID]map[string]map[string][]string

func (a assignments) get(uid types.UID, container, res string) []string {
	return a[uid][container][res]
}

func (a assignments) set(uid types.UID, container, res string, ids []string) {
	if ids == nil {
		delete(a[uid][container], res)
		return
	}
	if a[uid] == nil {
		a[uid] = map[string]map[string][]string{}
	}
	if a[uid][container] == nil {
		a[uid][container] = map[string][]string{}
	}
	a[uid][container][res] = ids
}

// held are the IDs of res given to any container, but for those of
// reusable's containers of pod uid (finished init containers, whose
// devices the pod's next containers may have, as upstream).
func (a assignments) held(res string, uid types.UID, reusable map[string]bool) map[string]bool {
	out := map[string]bool{}
	for u, cs := range a {
		for c, rs := range cs {
			if u == uid && reusable[c] {
				continue
			}
			for _, id := range rs[res] {
				out[id] = true
			}
		}
	}
	return out
}

type checkpoint struct {
	Version     int         `json:"version"`
	Assignments assignments `json:"assignments"`
}

// saveCheckpoint writes the assignments (temporary file, then rename).
// Called with mu held.
func (m *Manager) saveCheckpoint() error {
	raw, err := json.Marshal(checkpoint{Version: 1, Assignments: m.assign})
	if err != nil {
		return err
	}
	path := filepath.Join(m.dir, checkpointName)
	if err := os.WriteFile(path+".tmp", raw, 0o600); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

// loadCheckpoint reads the assignments an earlier kubelet wrote.
func (m *Manager) loadCheckpoint() error {
	raw, err := os.ReadFile(filepath.Join(m.dir, checkpointName))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var c checkpoint
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("parse %s: %w", checkpointName, err)
	}
	if c.Version != 1 {
		return fmt.Errorf("%s: version %d, want 1", checkpointName, c.Version)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c.Assignments != nil {
		m.assign = c.Assignments
	}
	return nil
}
