package bpftests

import (
	"net/netip"
	"testing"

	"github.com/hivelet/hivelet/datapath"
)

func TestPrivilegedPodClusterIP(t *testing.T) {
	e := newEnv(t)
	vip := netip.MustParseAddr("10.96.0.10")
	pod := ap(netip.MustParseAddr("10.244.0.11"), 5000)
	front := ap(vip, 80)
	e.service(datapath.Service{Frontend: datapath.Frontend{Addr: vip, Port: 80, Proto: datapath.TCP}}, be(remote4, 8080, false))

	t.Run("to a backend and back", func(t *testing.T) {
		v, p, _ := e.run(t, datapath.PodOut, tcp(pod, front, SYN).Frame())
		expectVerdict(t, v, pass)
		expectFlow(t, p, pod, ap(remote4, 8080))
		v, p, _ = e.run(t, datapath.PodIn, tcp(ap(remote4, 8080), pod, SYN|ACK).Frame())
		expectVerdict(t, v, pass)
		expectFlow(t, p, front, pod)
		_, p, _ = e.run(t, datapath.PodOut, tcp(pod, front, ACK).Frame())
		expectFlow(t, p, pod, ap(remote4, 8080))
	})

	t.Run("hairpin: a pod reaching itself through its Service", func(t *testing.T) {
		self := netip.MustParseAddr("10.244.0.12")
		hvip := netip.MustParseAddr("10.96.0.11")
		e.service(datapath.Service{Frontend: datapath.Frontend{Addr: hvip, Port: 80, Proto: datapath.TCP}}, be(self, 8080, true))
		client := ap(self, 6000)
		hairpin := ap(netip.MustParseAddr("169.254.42.1"), 6000)
		v, p, _ := e.run(t, datapath.PodOut, tcp(client, ap(hvip, 80), SYN).Frame())
		expectVerdict(t, v, redirect) // straight back into the pod
		expectFlow(t, p, hairpin, ap(self, 8080))
		// The pod answers the hairpin address; that leaves the pod too.
		v, p, _ = e.run(t, datapath.PodOut, tcp(ap(self, 8080), hairpin, SYN|ACK).Frame())
		expectVerdict(t, v, redirect)
		expectFlow(t, p, ap(hvip, 80), client)
	})

	t.Run("traffic for no service is untouched", func(t *testing.T) {
		v, p, _ := e.run(t, datapath.PodOut, tcp(pod, ap(remote4, 9999), SYN).Frame())
		expectVerdict(t, v, pass)
		expectFlow(t, p, pod, ap(remote4, 9999))
	})
}
