// Package cluster tests what users do with kubectl against nodes that
// run only hivelet, through the API server of hack/cluster.sh: exec
// (with a TTY too), attach, port-forward, logs -f, cp, the summary API,
// cluster DNS and Services across nodes. It brings the cluster up when
// none is (minutes the first time: the control plane is built) and
// leaves it up for the next run; `make test-cluster` runs it, `make
// test` skips it.
package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

var repo = func() string {
	_, f, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(f), "..", "..")
}()

const busybox = "hivelet.test/busybox:1"

// kubectl runs kubectl against the cluster with stdin; it returns stdout,
// stderr and the error (an *exec.ExitError carries the exit code).
func kubectl(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(repo, "hack", "cluster.sh"), append([]string{"kubectl"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func must(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errs, err := kubectl(t, stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out, errs)
	}
	return out
}

func TestMain(m *testing.M) {
	if os.Getenv("HIVELET_CLUSTER") != "1" {
		fmt.Println("skipping: HIVELET_CLUSTER=1 runs these on hack/cluster.sh (make test-cluster)")
		os.Exit(0)
	}
	if os.Geteuid() != 0 {
		fmt.Println("make test-cluster needs root: namespaces, cgroups, mounts")
		os.Exit(1)
	}
	if err := exec.Command(filepath.Join(repo, "hack", "cluster.sh"), "kubectl", "get", "--raw", "/readyz").Run(); err != nil {
		up := exec.Command(filepath.Join(repo, "hack", "cluster.sh"), "up")
		up.Stdout, up.Stderr = os.Stderr, os.Stderr
		if err := up.Run(); err != nil {
			fmt.Println("hack/cluster.sh up:", err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

// namespace makes a namespace for the test, deleted at its end.
func namespace(t *testing.T) string {
	ns := fmt.Sprintf("kt-%d", time.Now().UnixNano()%1_000_000_000)
	must(t, "", "create", "namespace", ns)
	t.Cleanup(func() { _, _, _ = kubectl(t, "", "delete", "namespace", ns, "--wait=false") })
	// The service account controller makes "default" shortly after.
	waitFor(t, "default service account", 60*time.Second, func() bool {
		_, _, err := kubectl(t, "", "-n", ns, "get", "serviceaccount", "default")
		return err == nil
	})
	return ns
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("%s: not within %s", what, d)
}

func nodes(t *testing.T) []string {
	return strings.Fields(must(t, "", "get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"))
}

// pod applies a pod manifest and waits until it is Ready.
func pod(t *testing.T, ns, manifest string) {
	t.Helper()
	must(t, manifest, "-n", ns, "apply", "-f", "-")
	var name struct {
		Metadata struct{ Name string } `json:"metadata"`
	}
	if err := json.Unmarshal([]byte(manifest), &name); err != nil {
		t.Fatal(err)
	}
	if _, errs, err := kubectl(t, "", "-n", ns, "wait", "--for=condition=Ready", "pod/"+name.Metadata.Name, "--timeout=120s"); err != nil {
		desc, _, _ := kubectl(t, "", "-n", ns, "describe", "pod", name.Metadata.Name)
		t.Fatalf("pod %s not Ready: %v %s\n%s", name.Metadata.Name, err, errs, desc)
	}
}

func podJSON(name, node string, stdin bool, cmd string, port int) string {
	ports := ""
	if port != 0 {
		ports = fmt.Sprintf(`, "ports": [{"containerPort": %d}]`, port)
	}
	return fmt.Sprintf(`{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": %q, "labels": {"app": %q}},
  "spec": {"nodeName": %q, "terminationGracePeriodSeconds": 1, "containers": [{"name": "main", "image": %q,
    "stdin": %v, "command": ["sh", "-c", %q]%s}]}}`, name, name, node, busybox, stdin, cmd, ports)
}

func TestKubectl(t *testing.T) {
	ns := namespace(t)
	nodeNames := nodes(t)
	if len(nodeNames) < 2 {
		t.Fatalf("want 2 nodes, have %v", nodeNames)
	}
	pod(t, ns, podJSON("web", nodeNames[0], false, `echo hello; i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done & mkdir -p /www && echo served > /www/index.html && exec httpd -f -p 8080 -h /www`, 8080))
	pod(t, ns, podJSON("reader", nodeNames[1], true, `read line; echo "got:$line"; sleep 3600`, 0))

	t.Run("exec", func(t *testing.T) {
		out, errs, err := kubectl(t, "", "-n", ns, "exec", "web", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
		ee, _ := err.(*exec.ExitError)
		if out != "out\n" || !strings.Contains(errs, "err") || ee == nil || ee.ExitCode() != 3 {
			t.Errorf("exec: stdout %q stderr %q err %v, want out, err, exit 3", out, errs, err)
		}
		if out := must(t, "line one\nline two\n", "-n", ns, "exec", "-i", "web", "--", "cat"); out != "line one\nline two\n" {
			t.Errorf("exec -i: %q", out)
		}
	})
	t.Run("exec -it", func(t *testing.T) {
		// script gives kubectl the terminal that -t wants.
		kc := filepath.Join(repo, "hack", "cluster.sh") + " kubectl -n " + ns + " exec -it web -- sh -c 'tty; stty size'"
		out, err := exec.Command("script", "-qec", kc, "/dev/null").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "/dev/pts/") {
			t.Errorf("exec -it: %v %q, want a pty", err, out)
		}
	})
	t.Run("attach", func(t *testing.T) {
		out := must(t, "hello attach\n", "-n", ns, "attach", "-i", "reader", "-c", "main")
		_ = out // attach -i prints what the process writes after attaching
		waitFor(t, "reader's answer in its log", 20*time.Second, func() bool {
			logs, _, _ := kubectl(t, "", "-n", ns, "logs", "reader")
			return strings.Contains(logs, "got:hello attach")
		})
	})
	t.Run("logs -f", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(repo, "hack", "cluster.sh"), "kubectl", "-n", ns, "logs", "-f", "--tail=1", "web")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); _ = cmd.Wait() }()
		sc := bufio.NewScanner(stdout)
		var got []string
		for len(got) < 3 && sc.Scan() {
			got = append(got, sc.Text())
		}
		if len(got) < 3 || !strings.HasPrefix(got[2], "tick ") || got[1] == got[2] {
			t.Errorf("logs -f: %q, want new tick lines as they come", got)
		}
	})
	t.Run("port-forward", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cmd := exec.CommandContext(ctx, filepath.Join(repo, "hack", "cluster.sh"), "kubectl", "-n", ns, "port-forward", "pod/web", "18089:8080")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); _ = cmd.Wait() }()
		var body string
		waitFor(t, "port-forward answering", 20*time.Second, func() bool {
			resp, err := http.Get("http://127.0.0.1:18089/index.html")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
			return true
		})
		if body != "served\n" {
			t.Errorf("port-forward: %q", body)
		}
	})
	t.Run("cp", func(t *testing.T) {
		src := filepath.Join(t.TempDir(), "payload")
		if err := os.WriteFile(src, []byte("copied through tar\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		must(t, "", "cp", src, ns+"/web:/tmp/payload")
		if out := must(t, "", "-n", ns, "exec", "web", "--", "cat", "/tmp/payload"); out != "copied through tar\n" {
			t.Errorf("cp in: %q", out)
		}
		back := filepath.Join(t.TempDir(), "back")
		must(t, "", "cp", ns+"/web:/www/index.html", back)
		if b, _ := os.ReadFile(back); string(b) != "served\n" {
			t.Errorf("cp out: %q", b)
		}
	})
	t.Run("summary API", func(t *testing.T) {
		raw := must(t, "", "get", "--raw", "/api/v1/nodes/"+nodeNames[0]+"/proxy/stats/summary")
		var sum struct {
			Node struct {
				NodeName string `json:"nodeName"`
				Memory   *struct {
					WorkingSetBytes uint64 `json:"workingSetBytes"`
				} `json:"memory"`
			} `json:"node"`
			Pods []struct {
				PodRef struct{ Name, Namespace string } `json:"podRef"`
				CPU    *struct {
					UsageNanoCores *uint64 `json:"usageNanoCores"`
				} `json:"cpu"`
			} `json:"pods"`
		}
		if err := json.Unmarshal([]byte(raw), &sum); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, p := range sum.Pods {
			found = found || p.PodRef.Name == "web" && p.PodRef.Namespace == ns && p.CPU != nil
		}
		if sum.Node.NodeName != nodeNames[0] || sum.Node.Memory == nil || sum.Node.Memory.WorkingSetBytes == 0 || !found {
			t.Errorf("summary: node %q memory %v, web with CPU found %v", sum.Node.NodeName, sum.Node.Memory, found)
		}
		if m := must(t, "", "get", "--raw", "/api/v1/nodes/"+nodeNames[0]+"/proxy/metrics"); !strings.Contains(m, "kubelet_running_pods ") {
			t.Errorf("/metrics through the API server lacks kubelet_running_pods")
		}
	})
	t.Run("DNS and a Service across nodes", func(t *testing.T) {
		must(t, "", "-n", ns, "expose", "pod", "web", "--port", "80", "--target-port", "8080")
		// reader runs on the other node: DNS through CoreDNS (the
		// kube-dns Service), then the Service through the socket LB.
		var out string
		waitFor(t, "web.<ns>.svc answering from the other node", 60*time.Second, func() bool {
			// Not wget -T: Debian's static busybox 1.35 crashes on it.
			out, _, _ = kubectl(t, "", "-n", ns, "exec", "reader", "--", "timeout", "5", "wget", "-qO-", "http://web/index.html")
			return out == "served\n"
		})
		out = must(t, "", "-n", ns, "exec", "reader", "--", "nslookup", "kubernetes.default.svc.cluster.local")
		if !strings.Contains(out, "10.96.0.1") {
			t.Errorf("nslookup kubernetes.default: %q", out)
		}
	})
}
