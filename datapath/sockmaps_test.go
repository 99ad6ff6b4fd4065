package datapath

import (
	"reflect"
	"slices"
	"testing"
)

// sockLBMaps mirrors the generated sockMaps less the per-packet maps: a
// map added to the socket object must land in one of the two.
func TestSockLBMapsCoverTheObject(t *testing.T) {
	tags := func(v any) []string {
		var out []string
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			out = append(out, rt.Field(i).Tag.Get("ebpf"))
		}
		return out
	}
	lb := tags(sockLBMaps{})
	for _, name := range tags(sockMaps{}) {
		in, pp := slices.Contains(lb, name), slices.Contains(perPacketMapNames, name)
		if in == pp {
			t.Errorf("map %s: in sockLBMaps %v, per-packet %v; want exactly one", name, in, pp)
		}
	}
	for _, name := range lb {
		if !slices.Contains(tags(sockMaps{}), name) {
			t.Errorf("sockLBMaps names %s, which the socket object does not have", name)
		}
	}
}
