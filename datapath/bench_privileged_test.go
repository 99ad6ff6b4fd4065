package datapath_test

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hivelet/hivelet/datapath"
	"github.com/hivelet/hivelet/test/testnet"
)

// fillServices programs n ClusterIP services with 3 backends each; the
// first is 10.96.0.10:80 -> pod-1..3, the rest are spread over 10.96/12.
func fillServices(b *testing.B, lb datapath.LBMap, pods []*testnet.Pod, n int) {
	b.Helper()
	ch := &datapath.Changes{}
	for i, p := range pods {
		ch.UpsertBackends = append(ch.UpsertBackends, datapath.BackendEntry{ID: datapath.BackendID(i + 1), Backend: datapath.Backend{Addr: netip.AddrPortFrom(p.IPv4, backendPort), Proto: datapath.TCP}})
	}
	for i := 0; i < n; i++ {
		vip := netip.AddrFrom4([4]byte{10, 96 + byte(i>>16), byte(i >> 8), byte(i)})
		if i == 0 {
			vip = netip.MustParseAddr("10.96.0.10")
		} else if vip == netip.MustParseAddr("10.96.0.10") {
			vip = netip.MustParseAddr("10.111.255.254")
		}
		f := datapath.Frontend{Addr: vip, Port: 80, Proto: datapath.TCP}
		ids := []datapath.BackendID{1, 2, 3}
		if i > 0 {
			base := datapath.BackendID(10 + 3*i)
			ids = []datapath.BackendID{base, base + 1, base + 2}
			for j, id := range ids {
				ch.UpsertBackends = append(ch.UpsertBackends, datapath.BackendEntry{ID: id, Backend: datapath.Backend{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 128 + byte(i>>16), byte(i >> 8), byte(i)}), uint16(8080+j)), Proto: datapath.TCP}})
			}
		}
		rn := datapath.RevNatID(i + 1)
		ch.UpsertRevNats = append(ch.UpsertRevNats, datapath.RevNatEntry{ID: rn, Addr: netip.AddrPortFrom(vip, 80)})
		ch.UpsertServices = append(ch.UpsertServices, datapath.ServiceUpdate{Service: datapath.Service{Frontend: f, RevNat: rn, Backends: ids}})
		// UDP twin, for the connected-UDP measurement.
		f.Proto = datapath.UDP
		ch.UpsertServices = append(ch.UpsertServices, datapath.ServiceUpdate{Service: datapath.Service{Frontend: f, RevNat: rn, Backends: ids}})
	}
	if err := lb.Apply(ch); err != nil {
		b.Fatal(err)
	}
}

func rawConnect(typ int, addr netip.AddrPort) error {
	fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if typ == unix.SOCK_STREAM {
		// Reset on close: no TIME_WAIT pile-up across millions of connects.
		if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
			return err
		}
	}
	return unix.Connect(fd, &unix.SockaddrInet4{Addr: addr.Addr().As4(), Port: int(addr.Port())})
}

func noSocket() (int, error) { return -1, nil }

func udpSocket() (int, error) { return unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0) }

// BenchmarkConnect compares connect() to a ClusterIP through the socket LB
// with connect() straight to a backend, interleaved in one loop so both
// see the same machine noise, at 10, 10k and 100k Services in the maps.
// Reported: ns per direct and per ClusterIP connect, and their ratio.
func BenchmarkConnect(b *testing.B) {
	testnet.RequireRoot(b)
	node := testnet.NewNode(b, 3)
	for _, p := range node.Pods {
		p.Serve(b, backendPort)
	}
	cg := testnet.NewCgroup(b)
	bpffs := filepath.Join(b.TempDir(), "bpffs")
	dp, err := datapath.Load(datapath.Config{BPFFSDir: bpffs, Sizes: datapath.MapSizes{Services: 1 << 20, Backends: datapath.DefaultMapSizes.Backends, RevNat: datapath.DefaultMapSizes.RevNat, SockRevNat: datapath.DefaultMapSizes.SockRevNat}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { dp.Close(); _ = datapath.Cleanup(bpffs) })
	if err := dp.AttachCgroup(cg); err != nil {
		b.Fatal(err)
	}
	testnet.EnterCgroup(b, cg)

	vip := netip.MustParseAddrPort("10.96.0.10:80")
	direct := netip.AddrPortFrom(node.Pods[0].IPv4, backendPort)
	for _, n := range []int{10, 10_000, 100_000} {
		fillServices(b, dp.LBMap(), node.Pods, n)
		for _, op := range []struct {
			name string
			open func() (int, error)
			do   func(fd int, to netip.AddrPort) error
		}{
			{"tcp", noSocket, func(_ int, to netip.AddrPort) error { return rawConnect(unix.SOCK_STREAM, to) }},
			{"udp", noSocket, func(_ int, to netip.AddrPort) error { return rawConnect(unix.SOCK_DGRAM, to) }},
			// One unconnected socket sending datagram after datagram, as
			// a DNS client does: sendmsg, not connect, runs the hook.
			{"udp-sendto", udpSocket, func(fd int, to netip.AddrPort) error {
				return unix.Sendto(fd, []byte("x"), 0, &unix.SockaddrInet4{Addr: to.Addr().As4(), Port: int(to.Port())})
			}},
		} {
			b.Run(fmt.Sprintf("services=%d/%s", n, op.name), func(b *testing.B) {
				var tDirect, tVIP time.Duration
				err := node.NS.Do(func() error {
					fd, err := op.open()
					if err != nil {
						return err
					}
					defer func() {
						if fd >= 0 {
							unix.Close(fd)
						}
					}()
					for i := 0; i < b.N; i++ {
						t0 := time.Now()
						if err := op.do(fd, direct); err != nil {
							return fmt.Errorf("direct: %w", err)
						}
						t1 := time.Now()
						if err := op.do(fd, vip); err != nil {
							return fmt.Errorf("clusterIP: %w", err)
						}
						tVIP += time.Since(t1)
						tDirect += t1.Sub(t0)
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(tDirect.Nanoseconds())/float64(b.N), "ns/direct")
				b.ReportMetric(float64(tVIP.Nanoseconds())/float64(b.N), "ns/clusterip")
				b.ReportMetric(float64(tVIP)/float64(tDirect), "clusterip/direct")
			})
		}
	}
}

// BenchmarkApply is the kernel floor of programming: one prepared batch of
// n Services × 3 backends (4n services-map entries, 3n backends, n
// reverse-NAT entries) written to empty maps, with nothing else to do.
func BenchmarkApply(b *testing.B) {
	testnet.RequireRoot(b)
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			ch := &datapath.Changes{}
			for i := 0; i < n; i++ {
				vip := netip.AddrFrom4([4]byte{10, 96 + byte(i>>16), byte(i >> 8), byte(i)})
				svc := datapath.Service{Frontend: datapath.Frontend{Addr: vip, Port: 80, Proto: datapath.TCP}, RevNat: datapath.RevNatID(i + 1)}
				for j := 0; j < 3; j++ {
					k := 3*i + j
					id := datapath.BackendID(k + 1)
					be := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 128 + byte(k>>16), byte(k >> 8), byte(k)}), 8080)
					ch.UpsertBackends = append(ch.UpsertBackends, datapath.BackendEntry{ID: id, Backend: datapath.Backend{Addr: be, Proto: datapath.TCP}})
					svc.Backends = append(svc.Backends, id)
				}
				ch.UpsertRevNats = append(ch.UpsertRevNats, datapath.RevNatEntry{ID: svc.RevNat, Addr: netip.AddrPortFrom(vip, 80)})
				ch.UpsertServices = append(ch.UpsertServices, datapath.ServiceUpdate{Service: svc})
			}
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				bpffs := filepath.Join(b.TempDir(), fmt.Sprintf("bpffs-%d", i))
				dp, err := datapath.Load(datapath.Config{BPFFSDir: bpffs, Sizes: datapath.DefaultMapSizes})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if err := dp.LBMap().Apply(ch); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				dp.Close()
				if err := datapath.Cleanup(bpffs); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/apply")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(8*n), "ns/entry")
		})
	}
}
