package kubelet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// kubeletAPI exposes the kubelet API of the node namespace on a loopback
// port of the test (each connection dialed from inside the namespace)
// and returns a client config that authenticates with the API server's
// kubelet-client certificate, as the API server does.
func (e *env) kubeletAPI(t testing.TB) *rest.Config {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			var up net.Conn
			e.rt.Node.Must(t, func() error {
				up, err = net.DialTimeout("tcp", "127.0.0.1:10250", 2*time.Second)
				return err
			})
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	cfg := &rest.Config{Host: "https://" + ln.Addr().String(), TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
	if e.clientCert.PrivateKey == nil {
		return cfg // the upstream kubelet of the benchmarks serves anonymous clients
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(e.clientCert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg.CertData = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.clientCert.Certificate[0]})
	cfg.KeyData = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return cfg
}

// kubeletExec runs cmd in a container through the kubelet API's exec
// (SPDY, as the API server speaks to a kubelet), with stdin.
func kubeletExec(t testing.TB, cfg *rest.Config, ns, pod, container, stdin string, cmd ...string) (string, string, error) {
	t.Helper()
	// The parameters as the API server writes them for a kubelet.
	q := url.Values{corev1.ExecStdoutParam: {"1"}, corev1.ExecStderrParam: {"1"}, corev1.ExecCommandParam: cmd}
	if stdin != "" {
		q.Set(corev1.ExecStdinParam, "1")
	}
	u, _ := url.Parse(fmt.Sprintf("%s/exec/%s/%s/%s?%s", cfg.Host, ns, pod, container, q.Encode()))
	ex, err := remotecommand.NewSPDYExecutor(cfg, http.MethodPost, u)
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	opts := remotecommand.StreamOptions{Stdout: &out, Stderr: &errb}
	if stdin != "" {
		opts.Stdin = strings.NewReader(stdin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = ex.StreamWithContext(ctx, opts)
	return out.String(), errb.String(), err
}

// testStreaming: exec (stdin, stdout, stderr, exit code) and
// port-forward through the kubelet API to the pod "web" (httpd on 8080).
func testStreaming(t *testing.T, e *env) {
	cfg := e.kubeletAPI(t)
	out, errOut, err := kubeletExec(t, cfg, e.ns, "web", "main", "from-stdin", "sh", "-c", "cat; echo; echo to-stderr >&2; echo $GREETING")
	if err != nil || out != "from-stdin\nhello\n" || errOut != "to-stderr\n" {
		t.Errorf("exec: stdout %q stderr %q err %v", out, errOut, err)
	}
	if _, _, err := kubeletExec(t, cfg, e.ns, "web", "main", "", "sh", "-c", "exit 3"); err == nil || !strings.Contains(err.Error(), "exit code 3") {
		t.Errorf("exec of a failing command: %v, want exit code 3", err)
	}
	if _, _, err := kubeletExec(t, cfg, e.ns, "nosuchpod", "main", "", "true"); err == nil {
		t.Error("exec into a pod that does not exist succeeded")
	}

	// port-forward: a local port reaches the pod's 8080.
	tr, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(fmt.Sprintf("%s/portForward/%s/web", cfg.Host, e.ns))
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: tr}, http.MethodPost, u)
	stop, ready := make(chan struct{}), make(chan struct{})
	defer close(stop)
	fw, err := portforward.New(dialer, []string{"0:8080"}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = fw.ForwardPorts() }()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("port-forward not ready within 10 s")
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) != 1 {
		t.Fatalf("forwarded ports %v %v", ports, err)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d/index.html", ports[0].Local))
	if err != nil {
		t.Fatalf("through port-forward: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello\n" {
		t.Errorf("through port-forward: %q", body)
	}

	// logs -f: the last line, then what the container writes next.
	rtr, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/containerLogs/%s/web/main?follow=true&tailLines=1&timestamps=true", cfg.Host, e.ns), nil)
	resp, err = (&http.Client{Transport: rtr}).Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("logs -f: %v %v", resp, err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	if !lines.Scan() || !strings.HasSuffix(lines.Text(), " log-line-2") {
		t.Fatalf("logs -f first line: %q", lines.Text())
	}
	if _, _, err := kubeletExec(t, cfg, e.ns, "web", "main", "", "sh", "-c", "echo followed > /proc/1/fd/1"); err != nil {
		t.Fatal(err)
	}
	if !lines.Scan() || !strings.HasSuffix(lines.Text(), " followed") {
		t.Errorf("logs -f did not stream the new line: %q %v", lines.Text(), lines.Err())
	}
	cancel()

	// Resource usage: the summary API, /metrics/resource and /pods.
	getBody := func(path string) string {
		t.Helper()
		resp, err := (&http.Client{Transport: rtr, Timeout: 10 * time.Second}).Get(cfg.Host + path)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %v %v", path, resp, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	var sum statsapi.Summary
	if err := json.Unmarshal([]byte(getBody("/stats/summary")), &sum); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range sum.Pods {
		for _, c := range p.Containers {
			if p.PodRef.Name == "web" && p.PodRef.Namespace == e.ns && c.Name == "main" && c.Memory != nil && c.Memory.WorkingSetBytes != nil && *c.Memory.WorkingSetBytes > 0 &&
				c.CPU != nil && c.CPU.UsageCoreNanoSeconds != nil {
				found = true
			}
		}
	}
	if sum.Node.NodeName != e.node || sum.Node.Memory == nil || !found {
		t.Errorf("summary: node %q, web/main with memory and CPU found: %v", sum.Node.NodeName, found)
	}
	if m := getBody("/metrics/resource"); !strings.Contains(m, `container_memory_working_set_bytes{container="main",namespace="`+e.ns+`",pod="web"}`) {
		t.Errorf("/metrics/resource lacks web/main:\n%s", m)
	}
	// The kubelet's own metrics: what it ran, as upstream names it.
	m := getBody("/metrics")
	for _, want := range []string{`kubelet_node_name{node="` + e.node + `"} 1`, `kubelet_runtime_operations_total{operation_type="run_pod_sandbox"}`,
		`kubelet_running_containers{container_state="running"}`, "kubelet_running_pods ", "kubelet_pleg_relist_duration_seconds_count ",
		`kubelet_started_containers_total{container_type="container"}`, "kubelet_pod_start_duration_seconds_count ", "process_resident_memory_bytes "} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, m)
		}
	}
	var cz struct {
		KubeletConfig struct {
			Kind string `json:"kind"`
			Port int    `json:"port"`
		} `json:"kubeletconfig"`
	}
	if err := json.Unmarshal([]byte(getBody("/configz")), &cz); err != nil || cz.KubeletConfig.Kind != "KubeletConfiguration" || cz.KubeletConfig.Port != 10250 {
		t.Errorf("/configz: %+v %v", cz, err)
	}
	var list corev1.PodList
	if err := json.Unmarshal([]byte(getBody("/pods")), &list); err != nil {
		t.Fatal(err)
	}
	webRunning := false
	for _, p := range list.Items {
		webRunning = webRunning || p.Name == "web" && p.Status.Phase == corev1.PodRunning
	}
	if !webRunning {
		t.Errorf("/pods lacks web Running (%d pods)", len(list.Items))
	}

	// Without a client certificate the kubelet API refuses.
	anon := rest.CopyConfig(cfg)
	anon.CertData, anon.KeyData = nil, nil
	if _, _, err := kubeletExec(t, anon, e.ns, "web", "main", "", "true"); err == nil {
		t.Error("exec without a client certificate succeeded")
	}
}
