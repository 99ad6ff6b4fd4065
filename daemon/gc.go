package daemon

import (
	"math"
	"os"
	"runtime/debug"
)

// The agent's garbage collector runs in two regimes. While it loads (the
// initial lists, their conversion, the first sync) nearly everything it
// allocates stays live, so collecting often only burns CPU on the path
// from start to programmed: a loose target, capped by a memory limit so
// a huge cluster cannot run away with the node's memory. Afterwards the
// changes are small next to the caches the agent holds: a tight target
// keeps its footprint near the live heap. GOGC and GOMEMLIMIT, when set,
// win over both.
const (
	loadGCPercent   = 400
	loadMemoryLimit = 512 << 20
	steadyGCPercent = 25
)

// setGCPercent sets the GC target unless the operator chose one with GOGC.
func setGCPercent(p int) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(p)
	}
}

func gcForLoad() {
	setGCPercent(loadGCPercent)
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(loadMemoryLimit)
	}
}

// gcForSteady switches to the steady regime and hands the load's garbage
// back to the OS, off the caller's goroutine: it takes a while and the
// next change must not wait for it.
func gcForSteady() {
	setGCPercent(steadyGCPercent)
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(math.MaxInt64)
	}
	go debug.FreeOSMemory()
}
