package datapath

import "fmt"

// statEnumValues is what enum hl_stat must hold, derived from the Go list.
func statEnumValues() map[string]uint64 {
	names := map[Stat]string{
		StatXlateNew: "STAT_XLATE_NEW", StatXlateEstablished: "STAT_XLATE_EST", StatXlateICMP: "STAT_XLATE_ICMP",
		StatDropNoBackend: "STAT_DROP_NO_BACKEND", StatDropSourceRange: "STAT_DROP_SRC_RANGE",
		StatDropFragment: "STAT_DROP_FRAG", StatDropCTFull: "STAT_DROP_CT_FULL",
		StatDropNATPorts: "STAT_DROP_NAT_PORTS", StatDropNoRoute: "STAT_DROP_FIB", StatMalformed: "STAT_MALFORMED",
	}
	out := map[string]uint64{"STAT_MAX": uint64(statMax)}
	for s, n := range names {
		out[n] = uint64(s)
	}
	if len(names) != int(statMax) {
		panic(fmt.Sprintf("statEnumValues: %d names for %d stats", len(names), statMax))
	}
	return out
}
