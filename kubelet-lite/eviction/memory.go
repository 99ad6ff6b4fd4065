package eviction

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
)

// meminfoPath is read for the node's memory; a variable for tests.
var meminfoPath = "/proc/meminfo"

// Memory is the node's memory as the upstream kubelet sees its root
// cgroup: usage less inactive file pages is the working set, and
// memory.available is capacity less that (page cache the kernel can drop
// at once counts as available, active cache and anonymous memory do not).
type Memory struct {
	Total, Free, InactiveFile uint64 // bytes
}

// WorkingSet is usage (total less free) less inactive file pages.
func (m Memory) WorkingSet() uint64 {
	used := m.Total - min(m.Free, m.Total)
	return used - min(m.InactiveFile, used)
}

// Available is memory.available: capacity less the working set.
func (m Memory) Available() uint64 { return m.Total - m.WorkingSet() }

// ReadMemory reads /proc/meminfo, a few microseconds: cheap enough to
// poll four times a second.
func ReadMemory() (Memory, error) {
	raw, err := os.ReadFile(meminfoPath)
	if err != nil {
		return Memory{}, err
	}
	var m Memory
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseUint(string(f[1]), 10, 64)
		switch string(f[0]) {
		case "MemTotal:":
			m.Total = v << 10
		case "MemFree:":
			m.Free = v << 10
		case "Inactive(file):":
			m.InactiveFile = v << 10
		}
	}
	return m, nil
}
