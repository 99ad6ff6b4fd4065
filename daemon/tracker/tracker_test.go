package tracker

import (
	"iter"
	"net/netip"
	"slices"
	"testing"
	"time"

	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
	"github.com/hivelet/hivelet/datapath"
)

var web = lb.ServiceName{Namespace: "shop", Name: "web"}

func svc() *lb.Service {
	return &lb.Service{Name: web, ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.10")},
		Ports: []lb.ServicePort{{Name: "http", Proto: datapath.TCP, Port: 80}}}
}

func slice(name, addr string) *lb.EndpointSlice {
	return &lb.EndpointSlice{Namespace: "shop", Name: name, Service: web,
		Ports:     []lb.EndpointPort{{Name: "http", Proto: datapath.TCP, Port: 8080}},
		Endpoints: []lb.Endpoint{{Addr: netip.MustParseAddr(addr), Ready: true, Serving: true}}}
}

func backends(c lb.Change) []string {
	var out []string
	for _, b := range c.Entries[0].Backends {
		out = append(out, b.Addr.String())
	}
	return out
}

func TestTrackerRecordsAndTakes(t *testing.T) {
	pokes := 0
	tr := New(func() { pokes++ })
	a, b := slice("web-a", "10.0.0.1"), slice("web-b", "10.0.0.2")
	tr.OnServiceUpdate(nil, svc())
	tr.OnEndpointSliceUpdate(nil, a)
	tr.OnEndpointSliceUpdate(nil, b)
	if pokes != 3 {
		t.Errorf("%d pokes for 3 changes", pokes)
	}

	got := collect(tr.Take(false))
	if len(got) != 1 || !slices.Equal(backends(got[0]), []string{"10.0.0.1:8080", "10.0.0.2:8080"}) {
		t.Fatalf("Take = %+v", got)
	}
	if got := collect(tr.Take(false)); len(got) != 0 {
		t.Fatalf("second Take without changes = %+v", got)
	}

	// A sequence taken before a change still sees the old slices: the
	// tracker never modifies a list it handed out.
	seq, _ := tr.Take(true)
	tr.OnEndpointSliceUpdate(a, nil)
	if got := slices.Collect(seq); !slices.Equal(backends(got[0]), []string{"10.0.0.1:8080", "10.0.0.2:8080"}) {
		t.Errorf("taken sequence changed under its consumer: %v", backends(got[0]))
	}
	got = collect(tr.Take(false))
	if !slices.Equal(backends(got[0]), []string{"10.0.0.2:8080"}) {
		t.Errorf("after deleting a slice: %v", backends(got[0]))
	}

	// A deleted Service is reported once, with no entries, also by a full Take.
	tr.OnServiceUpdate(svc(), nil)
	got = collect(tr.Take(true))
	if len(got) != 1 || got[0].Name != web || got[0].Entries != nil {
		t.Errorf("Take(all) after delete = %+v", got)
	}
	if s, e := tr.Counts(); s != 0 || e != 1 {
		t.Errorf("Counts = %d services, %d slices; want 0 and 1", s, e)
	}
}

func collect(seq iter.Seq[lb.Change], _ []time.Time) []lb.Change { return slices.Collect(seq) }

func TestTriggerTimes(t *testing.T) {
	tr := New(func() {})
	t0 := time.Unix(100, 0)
	a, b := slice("web-a", "10.0.0.1"), slice("web-b", "10.0.0.2")
	a.TriggerTime, b.TriggerTime = t0.Add(time.Second), t0
	tr.OnServiceUpdate(nil, svc())
	tr.OnEndpointSliceUpdate(nil, a)
	tr.OnEndpointSliceUpdate(nil, b)
	if _, trig := tr.Take(false); len(trig) != 1 || !trig[0].Equal(t0) {
		t.Errorf("triggers = %v, want the earliest, %v", trig, t0)
	}
	if _, trig := tr.Take(false); len(trig) != 0 {
		t.Errorf("triggers reported twice: %v", trig)
	}
}
