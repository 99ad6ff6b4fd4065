// Package pins names what the agent pins in bpffs, for readers that must
// not link the datapath itself (the CNI plugin starts per pod and stays
// small).
package pins

import (
	"fmt"
	"os"
	"path/filepath"
)

// DefaultBPFFS is where a node's agent pins its maps and links.
const DefaultBPFFS = "/sys/fs/bpf/hivelet"

// LinksDir holds the pinned program links.
func LinksDir(bpffs string) string { return filepath.Join(bpffs, "links") }

// CgroupLink is the pin of the cgroup link for one socket hook.
func CgroupLink(bpffs, hook string) string { return filepath.Join(LinksDir(bpffs), "cgroup_"+hook) }

// AgentLoaded reports whether an agent has loaded and attached its
// datapath under bpffs: every datapath pins a connect4 link, and that pin
// outlives agent restarts, as service translation does.
func AgentLoaded(bpffs string) error {
	pin := CgroupLink(bpffs, "connect4")
	if _, err := os.Stat(pin); err != nil {
		return fmt.Errorf("hivelet agent datapath not loaded (%s: %w); start `hivelet agent` on this node", pin, err)
	}
	return nil
}
