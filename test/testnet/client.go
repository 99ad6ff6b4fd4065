package testnet

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Reply is what a Serve server answered and whom the client saw.
type Reply struct {
	Name string
	// Peer is the connected socket's getpeername(), or the source of a
	// UDP reply on an unconnected socket.
	Peer netip.AddrPort
}

const ioTimeout = 2 * time.Second

// Peername asks the kernel for a socket's peer, as getpeername(2) does.
func Peername(c syscall.Conn) (netip.AddrPort, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var (
		sa   unix.Sockaddr
		gerr error
	)
	if err := rc.Control(func(fd uintptr) { sa, gerr = unix.Getpeername(int(fd)) }); err != nil {
		return netip.AddrPort{}, err
	}
	if gerr != nil {
		return netip.AddrPort{}, gerr
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), nil
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port)), nil
	}
	return netip.AddrPort{}, fmt.Errorf("unexpected sockaddr %T", sa)
}

// Dial connects to addr over network ("tcp" or "udp"; a connected socket),
// reads the server's name and closes. It must run inside NS.Do.
func Dial(network string, addr netip.AddrPort) (Reply, error) {
	c, err := net.DialTimeout(network, addr.String(), ioTimeout)
	if err != nil {
		return Reply{}, err
	}
	defer c.Close()
	return exchange(c)
}

func exchange(c net.Conn) (Reply, error) {
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	if _, ok := c.(*net.UDPConn); ok {
		if _, err := c.Write([]byte("hi")); err != nil {
			return Reply{}, err
		}
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		return Reply{}, err
	}
	peer, err := Peername(c.(syscall.Conn))
	if err != nil {
		return Reply{}, fmt.Errorf("getpeername: %w", err)
	}
	return Reply{Name: string(buf[:n]), Peer: peer}, nil
}

// SendTo sends one datagram from an unconnected UDP socket and returns the
// reply with the source address recvmsg() reported. Run it inside NS.Do.
func SendTo(addr netip.AddrPort) (Reply, error) {
	network := "udp4"
	if addr.Addr().Is6() {
		network = "udp6"
	}
	c, err := net.ListenUDP(network, nil)
	if err != nil {
		return Reply{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := c.WriteToUDPAddrPort([]byte("hi"), addr); err != nil {
		return Reply{}, err
	}
	buf := make([]byte, 64)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		return Reply{}, err
	}
	return Reply{Name: string(buf[:n]), Peer: netip.AddrPortFrom(from.Addr().Unmap(), from.Port())}, nil
}

// DialMapped connects an AF_INET6 TCP socket to a v4-mapped address (Go's
// net.Dial would pick AF_INET) and reads the server's name. Run it inside
// NS.Do.
func DialMapped(addr netip.AddrPort) (Reply, error) {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return Reply{}, err
	}
	if err := unix.Connect(fd, &unix.SockaddrInet6{Addr: addr.Addr().As16(), Port: int(addr.Port())}); err != nil {
		unix.Close(fd)
		return Reply{}, fmt.Errorf("connect %s: %w", addr, err)
	}
	f := os.NewFile(uintptr(fd), "mapped")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return Reply{}, err
	}
	defer c.Close()
	return exchange(c)
}

// Answers dials addr over TCP n times from inside ns and returns the
// sorted, distinct names of the servers that answered. Every answer must
// show addr as its peer (getpeername), or the test fails.
func Answers(t testing.TB, ns *NS, addr netip.AddrPort, n int) []string {
	t.Helper()
	seen := map[string]bool{}
	ns.Must(t, func() error {
		for i := 0; i < n; i++ {
			r, err := Dial("tcp", addr)
			if err != nil {
				return err
			}
			if r.Peer != addr {
				t.Errorf("getpeername = %s, want %s", r.Peer, addr)
			}
			seen[r.Name] = true
		}
		return nil
	})
	out := make([]string, 0, len(seen))
	for name := range seen {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Loop dials addr over TCP from inside ns again and again, pausing
// between dials, until Stop, counting what succeeds and what fails.
type Loop struct {
	OK, Failed atomic.Int64
	firstErr   atomic.Value
	stop       chan struct{}
	done       chan struct{}
}

// StartLoop starts a Loop.
func StartLoop(ns *NS, addr netip.AddrPort, pause time.Duration) *Loop {
	l := &Loop{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		_ = ns.Do(func() error {
			for {
				select {
				case <-l.stop:
					return nil
				default:
				}
				if _, err := Dial("tcp", addr); err != nil {
					l.Failed.Add(1)
					l.firstErr.CompareAndSwap(nil, err.Error())
				} else {
					l.OK.Add(1)
				}
				time.Sleep(pause)
			}
		})
	}()
	return l
}

// Stop ends the loop and waits for it.
func (l *Loop) Stop() {
	close(l.stop)
	<-l.done
}

// FirstErr is the first dial error, or nil.
func (l *Loop) FirstErr() any { return l.firstErr.Load() }
