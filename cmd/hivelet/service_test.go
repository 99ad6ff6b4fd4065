package main

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/hivelet/hivelet/datapath"
)

func TestServiceListShowsDamage(t *testing.T) {
	f := datapath.Frontend{Addr: netip.MustParseAddr("10.96.0.10"), Port: 80, Proto: datapath.TCP}
	st := datapath.NewState()
	st.Backends[1] = datapath.Backend{Addr: netip.MustParseAddrPort("10.0.0.1:8080"), Proto: datapath.TCP}
	st.RevNats[7] = netip.AddrPortFrom(f.Addr, f.Port)
	st.Services[f] = &datapath.DumpedService{Service: datapath.Service{Frontend: f, RevNat: 7, Backends: []datapath.BackendID{1, 2}}}
	empty := datapath.Frontend{Addr: netip.MustParseAddr("fd00::10"), Port: 53, Proto: datapath.UDP}
	st.RevNats[8] = netip.AddrPortFrom(empty.Addr, empty.Port)
	st.Services[empty] = &datapath.DumpedService{Service: datapath.Service{Frontend: empty, RevNat: 8, Flags: datapath.FlagExternalIP}}

	rows := serviceRows(st)
	if len(rows) != 2 || rows[0].ID != 7 || rows[1].Type != "ExternalIP" {
		t.Fatalf("rows = %+v", rows)
	}
	if rows[0].Problem != "backend 2 missing" || len(rows[0].Backends) != 1 {
		t.Errorf("a dangling backend id was not reported: %+v", rows[0])
	}
	var out bytes.Buffer
	if err := printServiceTable(&out, rows); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"10.96.0.10:80/TCP", "1 => 10.0.0.1:8080/TCP", "! backend 2 missing", "[fd00::10]:53/UDP", "(none: connections refused)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
