package testnet

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
)

// Pod is a namespace standing in for a pod, wired to its node's bridge.
type Pod struct {
	Name string
	NS   *NS
	IPv4 netip.Addr
	IPv6 netip.Addr
}

// Node is a namespace standing in for a node's host network: a bridge
// (10.244.0.1/24, fd00:10:244::1/64) with pods behind it.
type Node struct {
	NS   *NS
	Pods []*Pod
}

// Gateway addresses of the node bridge.
var (
	NodeIPv4 = netip.MustParseAddr("10.244.0.1")
	NodeIPv6 = netip.MustParseAddr("fd00:10:244::1")
)

// NewNode builds a node namespace with n pod namespaces named pod-1..pod-n
// at 10.244.0.11.. and fd00:10:244::11...
func NewNode(t testing.TB, n int) *Node {
	t.Helper()
	RequireRoot(t)
	node := &Node{NS: NewNS(t, "hln")}
	node.NS.IP(t, "link", "add", "br0", "type", "bridge")
	node.NS.IP(t, "addr", "add", NodeIPv4.String()+"/24", "dev", "br0")
	node.NS.IP(t, "addr", "add", NodeIPv6.String()+"/64", "dev", "br0", "nodad")
	node.NS.IP(t, "link", "set", "br0", "up")
	for i := 1; i <= n; i++ {
		node.AddPod(t, fmt.Sprintf("pod-%d", i), i)
	}
	return node
}

// AddPod wires one more pod with host number idx (address .10+idx).
func (node *Node) AddPod(t testing.TB, name string, idx int) *Pod {
	t.Helper()
	p := &Pod{
		Name: name,
		NS:   NewNS(t, "hlp"),
		IPv4: netip.AddrFrom4([4]byte{10, 244, 0, byte(10 + idx)}),
		IPv6: netip.MustParseAddr(fmt.Sprintf("fd00:10:244::%x", 0x10+idx)),
	}
	host := fmt.Sprintf("veth%d", idx)
	node.NS.IP(t, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", p.NS.Name)
	node.NS.IP(t, "link", "set", host, "master", "br0", "up")
	p.NS.IP(t, "addr", "add", p.IPv4.String()+"/24", "dev", "eth0")
	p.NS.IP(t, "addr", "add", p.IPv6.String()+"/64", "dev", "eth0", "nodad")
	p.NS.IP(t, "link", "set", "eth0", "up")
	p.NS.IP(t, "route", "add", "default", "via", NodeIPv4.String())
	p.NS.IP(t, "-6", "route", "add", "default", "via", NodeIPv6.String())
	node.Pods = append(node.Pods, p)
	return p
}

// Serve starts TCP and UDP servers on port (both families) that answer
// every connection or datagram with the pod's name; TCP then echoes. They stop at cleanup.
func (p *Pod) Serve(t testing.TB, port int) {
	t.Helper()
	var (
		ln net.Listener
		pc net.PacketConn
	)
	p.NS.Must(t, func() error {
		var err error
		if ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port)); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", fmt.Sprintf(":%d", port))
		return err
	})
	t.Cleanup(func() { pc.Close() })
	AcceptLoop(t, ln, func(c net.Conn) {
		_, _ = c.Write([]byte(p.Name))
		// Then echo until the client closes, so tests can keep
		// established connections open and prove they still work.
		_, _ = io.Copy(c, c)
	})
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err == nil {
				_, _ = pc.WriteTo([]byte(p.Name), from)
			}
		}
	}()
}

// ListenTCP listens on addr inside ns and serves every connection with
// handle (which need not close it) until the test ends.
func ListenTCP(t testing.TB, ns *NS, addr string, handle func(net.Conn)) {
	t.Helper()
	var ln net.Listener
	ns.Must(t, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	AcceptLoop(t, ln, handle)
}

// AcceptLoop serves ln's connections with handle, one goroutine each,
// until the test ends and ln is closed.
func AcceptLoop(t testing.TB, ln net.Listener, handle func(net.Conn)) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
}
