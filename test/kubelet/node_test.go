package kubelet

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/hivelet/hivelet/test/containerd"
	"github.com/hivelet/hivelet/test/harness"
)

// webPod is a static pod of app=web answering its own name on port http,
// ready once it answers; its preStop pause gives the endpoint's removal
// time to land before the server stops, as Services' pods on any node do.
func webPod(name string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %[1]s, namespace: demo, labels: {app: web}}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: httpd
    image: %[2]s
    command: [sh, -c, "mkdir -p /www && echo %[1]s > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports: [{name: http, containerPort: 8080}]
    readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
    lifecycle: {preStop: {sleep: {seconds: 2}}}
`, name, containerd.BusyboxRef)
}

const nodeService = `apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  clusterIP: 10.96.0.10
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
`

// requestLoop is the shell loop both clients run: one request every 50 ms
// to the Service, its answer or FAIL on a line, until the stop file shows.
const requestLoop = `while [ ! -e %[1]s/stop ]; do %[2]s http://10.96.0.10/ 2>/dev/null || echo FAIL; sleep 0.05; done`

// TestPrivilegedHiveletNodeStandalone runs `hivelet node` as an edge node
// runs it: no API server, static pods behind a Service from a manifests
// directory, whose endpoints the agent finds among the kubelet's pods. A
// pod is replaced and the node restarted while a client on the host and
// one in a pod keep asking: not one request may fail.
func TestPrivilegedHiveletNodeStandalone(t *testing.T) {
	staticDir, svcDir, out := t.TempDir(), t.TempDir(), t.TempDir()
	e := prepareNode(t, false, staticDir, viaHivelet)
	bpffs := filepath.Join(t.TempDir(), "bpffs")
	e.args[0] = "node"
	e.args = append(e.args, "--manifests", svcDir, "--bpffs", bpffs, "--cgroup2", e.rt.Cgroup, "--devices", "none",
		"--proxy-healthz-bind-address", "127.0.0.1:0", "--proxy-metrics-bind-address", "127.0.0.1:0")
	t.Cleanup(func() {
		if out, err := exec.Command(filepath.Join(binDir, "hivelet"), "agent", "--cleanup", "--bpffs", bpffs).CombinedOutput(); err != nil {
			t.Errorf("agent --cleanup: %v\n%s", err, out)
		}
	})
	write := func(dir, name, body string) {
		t.Helper()
		// Written aside and renamed: the kubelet never reads half a file.
		tmp := filepath.Join(dir, "."+name)
		if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	write(svcDir, "web.yaml", nodeService)
	write(staticDir, "web-1.yaml", webPod("web-1"))
	write(staticDir, "web-2.yaml", webPod("web-2"))
	write(staticDir, "client.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: client, namespace: demo}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: out, hostPath: {path: %[1]s}}]
  containers:
  - name: loop
    image: %[2]s
    command: [sh, -c, %[3]q]
    volumeMounts: [{name: out, mountPath: /out}]
`, out, containerd.BusyboxRef, fmt.Sprintf(requestLoop, "/out", "timeout 2 wget -q -O-")+" >> /out/pod.log; exec sleep 2147483647"))
	e.start()

	hivelet := filepath.Join(binDir, "hivelet")
	backends := func() []string {
		b := harness.BackendsOf(hivelet, bpffs, "10.96.0.10:80/TCP")
		slices.Sort(b)
		return b
	}
	waitBackends := func(what string, n int) []string {
		t.Helper()
		var got []string
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			if got = backends(); len(got) == n {
				return got
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s: backends %v, want %d\nnode log:\n%s", what, got, n, harness.Tail(e.kubelet.Log(), 40))
		return nil
	}
	first := waitBackends("both web pods ready", 2)

	// The host's client: a process of the node's namespace, in the cgroup
	// the socket hooks are attached to.
	host := exec.Command("sh", "-c", `echo $$ > "$1/cgroup.procs" && exec nsenter --net="$2" sh -c "$3" > "$4/host.log"`, "_",
		e.rt.Cgroup, e.rt.Node.Path(), fmt.Sprintf(requestLoop, out, "curl -sf -m 2"), out)
	host.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	stopLoops := func() {
		_ = os.WriteFile(filepath.Join(out, "stop"), nil, 0o644)
		_ = host.Wait()
	}
	defer stopLoops()
	defer func() {
		if t.Failed() {
			sl, _ := exec.Command(hivelet, "service", "list", "--bpffs", bpffs).CombinedOutput()
			t.Logf("service list:\n%s", sl)
			for _, f := range []string{"host.log", "pod.log"} {
				b, _ := os.ReadFile(filepath.Join(out, f))
				t.Logf("%s:\n%s", f, harness.Tail(string(b), 15))
			}
		}
	}()
	answers := func(file string) []string {
		b, _ := os.ReadFile(filepath.Join(out, file))
		return strings.Fields(string(b))
	}
	harness.WaitFor(t, "both clients reach both pods", func() bool {
		for _, f := range []string{"host.log", "pod.log"} {
			a := answers(f)
			if !slices.Contains(a, "web-1") || !slices.Contains(a, "web-2") {
				return false
			}
		}
		return true
	})

	marks := map[string][]int{}
	mark := func() {
		for _, f := range []string{"host.log", "pod.log"} {
			marks[f] = append(marks[f], len(answers(f)))
		}
	}
	mark()
	t.Run("a pod replaced under traffic", func(t *testing.T) {
		if err := os.Remove(filepath.Join(staticDir, "web-1.yaml")); err != nil {
			t.Fatal(err)
		}
		write(staticDir, "web-3.yaml", webPod("web-3"))
		harness.WaitFor(t, "web-3 serving, web-1 gone", func() bool {
			b := backends()
			return len(b) == 2 && !slices.Equal(b, first) && slices.Contains(answers("host.log")[max(0, len(answers("host.log"))-20):], "web-3")
		})
	})

	mark()
	t.Run("the node restarted under traffic", func(t *testing.T) {
		before := backends()
		e.kubelet.Stop(syscall.SIGTERM)
		time.Sleep(time.Second) // the maps serve alone meanwhile
		n := len(answers("host.log"))
		mark()
		e.start()
		var first string
		harness.WaitFor(t, "the restarted node's first full sync", func() bool {
			for _, l := range strings.Split(e.kubelet.Log(), "\n") {
				if strings.Contains(l, "msg=Synced") && strings.Contains(l, "full=true") {
					first = l
					return true
				}
			}
			return false
		})
		// It waited for the kubelet to know its pods' readiness again, so
		// it found the maps as they should be.
		if !strings.Contains(first, "upserts=0 deletes=0") {
			t.Errorf("the first sync after the restart changed the maps: %s", first)
		}
		time.Sleep(3 * time.Second)
		if after := backends(); !slices.Equal(after, before) {
			t.Errorf("backends %v after the restart, %v before", after, before)
		}
		if got := len(answers("host.log")) - n; got < 20 {
			t.Errorf("only %d requests from the host after the restart", got)
		}
	})

	stopLoops()
	for _, f := range []string{"host.log", "pod.log"} {
		a := answers(f)
		var fails []int
		// The client pod may start before the web pods are ready: its
		// count starts once both answered.
		for i, l := range a {
			if l == "FAIL" && i >= marks[f][0] {
				fails = append(fails, i)
			}
		}
		t.Logf("%s: %d requests, %d failed; phases start at %v", f, len(a), len(fails), marks[f])
		if len(fails) > 0 || len(a) < 50 {
			t.Errorf("%s: requests %v of %d failed (want none of at least 50)", f, fails, len(a))
		}
	}
}

// TestPrivilegedHiveletNodeWithAPIServer runs `hivelet node` as a cluster
// node: the kubelet half registers the Node and runs a pod bound to it,
// and the agent half, with the same kubeconfig, serves a Service of the
// API server with that pod behind it.
func TestPrivilegedHiveletNodeWithAPIServer(t *testing.T) {
	e := prepareNode(t, true, "", viaHivelet)
	bpffs := filepath.Join(t.TempDir(), "bpffs")
	e.args[0] = "node"
	e.args = append(e.args, "--bpffs", bpffs, "--cgroup2", e.rt.Cgroup, "--devices", "none",
		"--proxy-healthz-bind-address", "127.0.0.1:0", "--proxy-metrics-bind-address", "127.0.0.1:0")
	t.Cleanup(func() {
		_, _ = exec.Command(filepath.Join(binDir, "hivelet"), "agent", "--cleanup", "--bpffs", bpffs).CombinedOutput()
	})
	e.start()
	e.create(t, "web", corev1.RestartPolicyAlways, corev1.Container{
		Command:        []string{"sh", "-c", "mkdir -p /www && echo web > /www/index.html && exec httpd -f -p 8080 -h /www"},
		Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intOrName("http")}}, PeriodSeconds: 1},
	})
	pod := e.waitPod(t, "web", "Ready", ready)
	svc, err := e.client.CoreV1().Services(e.ns).Create(e.ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// No controller manager runs in this tier: the test writes the slice
	// the EndpointSlice controller would.
	_, err = e.client.DiscoveryV1().EndpointSlices(e.ns).Create(e.ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{pod.Status.PodIP}, NodeName: ptr.To(e.node),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	frontend := svc.Spec.ClusterIP + ":80/TCP"
	harness.WaitFor(t, "the node's agent to serve the Service", func() bool {
		b := harness.BackendsOf(filepath.Join(binDir, "hivelet"), bpffs, frontend)
		return len(b) == 1 && b[0] == pod.Status.PodIP+":8080/TCP"
	})
	// A process of the node, in the cgroup the socket hooks are on.
	out, err := exec.Command("sh", "-c", `echo $$ > "$1/cgroup.procs" && exec nsenter --net="$2" curl -sf -m 5 "http://$3/"`, "_",
		e.rt.Cgroup, e.rt.Node.Path(), svc.Spec.ClusterIP).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "web" {
		t.Errorf("the ClusterIP from the node: %q %v\nnode log:\n%s", out, err, harness.Tail(e.kubelet.Log(), 30))
	}
}
