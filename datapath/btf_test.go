package datapath

import (
	"reflect"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// TestGoTwinsMatchBTF checks every Go mirror of a C map struct against the
// compiled object, member by member, so a change on one side fails here.
func TestGoTwinsMatchBTF(t *testing.T) {
	spec, err := loadSock()
	if err != nil {
		t.Fatal(err)
	}
	twins := map[string]any{
		"lb4_key": sockLb4Key{}, "lb6_key": sockLb6Key{}, "lb_service": sockLbService{},
		"lb4_backend": sockLb4Backend{}, "lb6_backend": sockLb6Backend{},
		"lb4_reverse_nat": sockLb4ReverseNat{}, "lb6_reverse_nat": sockLb6ReverseNat{},
		"sock_revnat4_key": sockSockRevnat4Key{}, "sock_revnat4_value": sockSockRevnat4Value{},
		"sock_revnat6_key": sockSockRevnat6Key{}, "sock_revnat6_value": sockSockRevnat6Value{},
		"lb_affinity_key": sockLbAffinityKey{}, "lb_affinity_val": sockLbAffinityVal{},
		"lb_affinity_match_key": sockLbAffinityMatchKey{},
		"ct_key":                sockCtKey{}, "ct_entry": sockCtEntry{}, "lb_srcrange_key": sockLbSrcrangeKey{},
		"lb_affinity_ext_key": sockLbAffinityExtKey{}, "host_config": sockHostConfig{},
	}
	for name, v := range twins {
		var st *btf.Struct
		if err := spec.Types.TypeByName(name, &st); err != nil {
			t.Fatalf("struct %s not in object: %v", name, err)
		}
		gt := reflect.TypeOf(v)
		if uintptr(st.Size) != gt.Size() {
			t.Errorf("%s: C size %d, Go size %d", name, st.Size, gt.Size())
		}
		var fields []reflect.StructField
		for i := 0; i < gt.NumField(); i++ {
			if f := gt.Field(i); f.Name != "_" {
				fields = append(fields, f)
			}
		}
		if len(fields) != len(st.Members) {
			t.Errorf("%s: C has %d members, Go %d", name, len(st.Members), len(fields))
			continue
		}
		for i, m := range st.Members {
			if got, want := fields[i].Offset, uintptr(m.Offset.Bytes()); got != want {
				t.Errorf("%s.%s: C offset %d, Go offset %d (%s)", name, m.Name, want, got, fields[i].Name)
			}
		}
	}
}

// TestGoConstantsMatchBTF checks the hand-written Go constants against the
// C enums they mirror.
func TestGoConstantsMatchBTF(t *testing.T) {
	spec, err := loadSock()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]uint64{
		"lb_svc_flags": {
			"LB_SVC_CLUSTER_IP": uint64(FlagClusterIP), "LB_SVC_EXTERNAL_IP": uint64(FlagExternalIP),
			"LB_SVC_NODEPORT": uint64(FlagNodePort), "LB_SVC_LOADBALANCER": uint64(FlagLoadBalancer),
			"LB_SVC_AFFINITY": uint64(FlagAffinity), "LB_SVC_EXT_LOCAL": uint64(FlagExtLocal),
			"LB_SVC_SRC_RANGES": uint64(FlagSourceRanges),
		},
		"lb_algorithm":     {"LB_ALG_RANDOM": uint64(AlgRandom), "LB_ALG_MAGLEV": uint64(AlgMaglev)},
		"lb_backend_flags": {"LB_BE_LOCAL": backendLocal},
		"ct_dir":           {"CT_INGRESS": ctIngress, "CT_EGRESS": ctEgress, "CT_POD_OUT": ctPodOut, "CT_POD_IN": ctPodIn},
		"hl_stat":          statEnumValues(),
		"lb_scope":         {"LB_SCOPE_EXT": uint64(ScopeExternal), "LB_SCOPE_LOCAL": uint64(ScopeLocal)},
	}
	for enum, values := range want {
		var e *btf.Enum
		if err := spec.Types.TypeByName(enum, &e); err != nil {
			t.Fatalf("enum %s not in object: %v", enum, err)
		}
		got := map[string]uint64{}
		for _, v := range e.Values {
			got[v.Name] = v.Value
		}
		if !reflect.DeepEqual(got, values) {
			t.Errorf("enum %s: C %v, Go %v", enum, got, values)
		}
	}
}
