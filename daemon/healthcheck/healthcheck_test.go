package healthcheck

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"

	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
)

func freePort(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

func probe(t *testing.T, port uint16) (int, reply, error) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		return 0, reply{}, err
	}
	defer resp.Body.Close()
	var r reply
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	return resp.StatusCode, r, nil
}

func TestServersFollowLocalEndpoints(t *testing.T) {
	s := New("127.0.0.1", slog.New(slog.DiscardHandler))
	defer s.Close()
	web := lb.ServiceName{Namespace: "shop", Name: "web"}
	port := freePort(t)

	s.Update(web, &lb.Health{Port: port, LocalEndpoints: 0})
	code, r, err := probe(t, port)
	if err != nil || code != http.StatusServiceUnavailable || r.LocalEndpoints != 0 || r.Service.Name != "web" {
		t.Fatalf("no local endpoints: %d %+v %v; want 503", code, r, err)
	}
	s.Update(web, &lb.Health{Port: port, LocalEndpoints: 2})
	code, r, err = probe(t, port)
	if err != nil || code != http.StatusOK || r.LocalEndpoints != 2 || !r.ServiceProxyHealthy {
		t.Fatalf("two local endpoints: %d %+v %v; want 200", code, r, err)
	}
	// The Service goes away: the port closes.
	s.Retain(map[lb.ServiceName]bool{})
	if _, _, err := probe(t, port); err == nil {
		t.Fatal("health-check port still served after its Service left")
	}
}
