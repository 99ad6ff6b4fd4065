package harness

import (
	"io"
	"net"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/hivelet/hivelet/test/testnet"
)

// APIServerAddr returns host:port of the API server a kubeconfig names.
func APIServerAddr(t testing.TB, kubeconfig string) string {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(cfg.Host, "https://")
	if _, _, err := net.SplitHostPort(host); err != nil {
		t.Fatalf("API server address %q: %v", cfg.Host, err)
	}
	return host
}

// ForwardInto makes addr (a loopback address of this machine's namespace,
// such as the test API server's) reachable at the same address inside
// ns, so a process there uses the unchanged kubeconfig and certificate.
func ForwardInto(t testing.TB, ns *testnet.NS, addr string) {
	var ln net.Listener
	ns.Must(t, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer in.Close()
				out, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer out.Close()
				go func() { _, _ = io.Copy(out, in); out.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(in, out)
			}()
		}
	}()
}
