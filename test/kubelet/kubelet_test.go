// Package kubelet drives `hivelet kubelet` (kubelet-lite) as a node runs
// it: against the real API server of hack/k8s.sh and Debian's containerd
// + runc (test/containerd), with hivelet-cni wiring the pods.
package kubelet

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"

	"github.com/hivelet/hivelet/kubelet-lite/volumes"
	"github.com/hivelet/hivelet/test/containerd"
	"github.com/hivelet/hivelet/test/harness"
	"github.com/hivelet/hivelet/test/images"
	"github.com/hivelet/hivelet/test/registry"
	"github.com/hivelet/hivelet/test/testnet"
)

var binDir string

func TestMain(m *testing.M) {
	os.Exit(harness.BuildMain(m, "hivelet-kubelet-bin-", map[string]string{
		"hivelet":         "github.com/hivelet/hivelet/cmd/hivelet",
		"hivelet-cni":     "github.com/hivelet/hivelet/cmd/hivelet-cni",
		"hivelet-kubelet": "github.com/hivelet/hivelet/cmd/hivelet-kubelet",
	}, &binDir))
}

// env is a node: containerd in its namespace, and kubelet-lite there too
// (probes reach pod addresses), the API server forwarded in.
type env struct {
	t          testing.TB
	rt         *containerd.Runtime
	client     kubernetes.Interface
	kubeconfig string
	node       string
	ns         string
	bin        string
	args       []string
	kubelet    *harness.Agent
	ctx        context.Context
	cgroupName string          // the pods' cgroup root, under every hierarchy
	clientCert tls.Certificate // accepted by kubelet-lite's API
}

func (e *env) hasEvent(pod, reason, text string) bool {
	evs, err := e.client.CoreV1().Events(e.ns).List(e.ctx, metav1.ListOptions{})
	if err != nil {
		return false
	}
	for _, ev := range evs.Items {
		if ev.InvolvedObject.Name == pod && ev.Reason == reason && strings.Contains(ev.Message, text) {
			return true
		}
	}
	return false
}

func newEnv(t testing.TB, withAPI bool, manifests string) *env {
	return newNode(t, withAPI, manifests, "")
}

// viaHivelet runs kubelet-lite as `hivelet kubelet` instead of the
// hivelet-kubelet binary.
const viaHivelet = "hivelet kubelet"

// newNode starts a node run by hivelet-kubelet, by `hivelet kubelet` when
// upstream is viaHivelet, or by the upstream kubelet binary when upstream
// is its path.
func newNode(t testing.TB, withAPI bool, manifests, upstream string) *env {
	e := prepareNode(t, withAPI, manifests, upstream)
	e.start()
	return e
}

// prepareNode is newNode up to starting the kubelet, for a test to
// change its arguments first.
func prepareNode(t testing.TB, withAPI bool, manifests, upstream string) *env {
	testnet.RequireRoot(t)
	cg := testnet.NewCgroup(t)
	containerd.V1Cleanup(t, filepath.Base(cg))
	e := &env{t: t, rt: containerd.New(t, binDir, cg), ctx: context.Background(), cgroupName: filepath.Base(cg),
		node: fmt.Sprintf("kl%d-%d", os.Getpid()%100000, time.Now().UnixNano()%100000)}
	// The node's own address, as a real node has one: probes and the
	// pods' answers to them need it.
	e.rt.Node.IP(t, "addr", "add", "192.0.2.10/32", "dev", "lo")
	e.bin = filepath.Join(binDir, "hivelet-kubelet")
	root := t.TempDir()
	// Pods still bound to the node when the test ends keep their tmpfs
	// volumes and subPath binds (a stopped kubelet leaves them, as
	// upstream does): unmounted after the kubelet stops, before the
	// directory goes.
	t.Cleanup(func() {
		mps, _ := volumes.MountsBeneath(root)
		for _, mp := range mps {
			volumes.Unmount(mp)
		}
	})
	e.args = []string{"--container-runtime-endpoint", "unix://" + e.rt.Sock, "--hostname-override", e.node,
		"--node-ip", "192.0.2.10", "--log-level", "debug", "--root-dir", root,
		"--pod-logs-dir", filepath.Join(root, "logs"), "--cgroup-root", "/" + filepath.Base(cg),
		// A test node must not evict its pods because the machine's disk
		// is fuller than a real node's would be (the upstream kubelet's
		// test configuration does the same); eviction tests set their own.
		"--eviction-hard", "memory.available<1Mi,nodefs.available<1%,imagefs.available<1%"}
	switch upstream {
	case "":
	case viaHivelet:
		e.bin, e.args = filepath.Join(binDir, "hivelet"), append([]string{"kubelet"}, e.args...)
	default:
		e.bin, e.args = upstream, upstreamArgs(t, e, "/"+filepath.Base(cg))
	}
	if withAPI {
		client, kubeconfig, err := harness.K8sUp(50)
		if err != nil {
			t.Fatal(err)
		}
		e.client, e.kubeconfig = client, kubeconfig
		harness.ForwardInto(t, e.rt.Node, harness.APIServerAddr(t, kubeconfig))
		e.args = append(e.args, "--kubeconfig", kubeconfig)
		e.ns = e.node
		if _, err := client.CoreV1().Namespaces().Create(e.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// No controller manager runs here to make it.
		if _, err := client.CoreV1().ServiceAccounts(e.ns).Create(e.ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := client.CoreV1().ConfigMaps(e.ns).Create(e.ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt"},
			Data: map[string]string{"ca.crt": "test cluster CA"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = client.CoreV1().Namespaces().Delete(e.ctx, e.ns, metav1.DeleteOptions{})
			_ = client.CoreV1().Nodes().Delete(e.ctx, e.node, metav1.DeleteOptions{})
		})
	}
	if manifests != "" {
		e.args = append(e.args, "--pod-manifest-path", manifests)
	}
	if upstream == "" || upstream == viaHivelet {
		var ca string
		ca, e.clientCert = clientPKI(t)
		e.args = append(e.args, "--client-ca-file", ca, "--address", "127.0.0.1")
	}
	return e
}

func (e *env) start() {
	cmd := exec.Command("nsenter", append([]string{"--net=" + e.rt.Node.Path(), "--", e.bin}, e.args...)...)
	e.kubelet = harness.Start(e.t, cmd)
}

func (e *env) pod(name string) *corev1.Pod {
	p, err := e.client.CoreV1().Pods(e.ns).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return p
}

// create makes a pod bound to this node, with a short grace period.
func (e *env) create(t testing.TB, name string, restart corev1.RestartPolicy, c corev1.Container) {
	t.Helper()
	c.Name, c.Image = "main", containerd.BusyboxRef
	c.ImagePullPolicy = corev1.PullIfNotPresent
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns},
		Spec: corev1.PodSpec{NodeName: e.node, RestartPolicy: restart, TerminationGracePeriodSeconds: ptr.To(int64(2)),
			AutomountServiceAccountToken: ptr.To(false), Containers: []corev1.Container{c}}}
	if _, err := e.client.CoreV1().Pods(e.ns).Create(e.ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) waitPod(t testing.TB, name, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var last *corev1.Pod
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if last = e.pod(name); last != nil && cond(last) {
			return last
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("pod %s: %s: not within 60 s; last status: %+v\nkubelet log:\n%s", name, what, last.Status, harness.Tail(e.kubelet.Log(), 30))
	return nil
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (e *env) exec(t *testing.T, containerID string, cmd ...string) string {
	t.Helper()
	r, err := e.rt.RT.ExecSync(e.ctx, &runtimeapi.ExecSyncRequest{ContainerId: strings.TrimPrefix(containerID, "containerd://"), Cmd: cmd, Timeout: 10})
	if err != nil {
		t.Fatalf("exec %v: %v", cmd, err)
	}
	return strings.TrimSpace(string(r.Stdout))
}

func TestPrivilegedKubeletLite(t *testing.T) {
	manifests := t.TempDir()
	e := newEnv(t, true, manifests)

	t.Run("the node registers Ready with a Lease", func(t *testing.T) {
		harness.WaitFor(t, "node Ready", func() bool {
			n, err := e.client.CoreV1().Nodes().Get(e.ctx, e.node, metav1.GetOptions{})
			if err != nil {
				return false
			}
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					return n.Status.Capacity.Cpu().Value() > 0 && n.Status.Capacity.Pods().Value() == 110 && n.Labels[corev1.LabelHostname] == e.node
				}
			}
			return false
		})
		var l *coordinationv1.Lease
		harness.WaitFor(t, "node lease", func() bool {
			var err error
			l, err = e.client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(e.ctx, e.node, metav1.GetOptions{})
			return err == nil
		})
		if *l.Spec.HolderIdentity != e.node || *l.Spec.LeaseDurationSeconds != 40 {
			t.Errorf("lease %+v", l.Spec)
		}
	})

	t.Run("a pod runs, reports Running with its IP, and sees its env", func(t *testing.T) {
		e.create(t, "web", corev1.RestartPolicyAlways, corev1.Container{
			Command: []string{"sh", "-c", "echo log-line-1; echo log-line-2; mkdir -p /www && echo $(GREETING) > /www/index.html && exec httpd -f -p 8080 -h /www"},
			Env: []corev1.EnvVar{{Name: "GREETING", Value: "hello"},
				{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
			Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intOrName("http")}}, PeriodSeconds: 1},
		})
		p := e.waitPod(t, "web", "Running and Ready with an IP", func(p *corev1.Pod) bool {
			return p.Status.Phase == corev1.PodRunning && ready(p) && strings.HasPrefix(p.Status.PodIP, "10.244.9.")
		})
		cs := p.Status.ContainerStatuses[0]
		if cs.State.Running == nil || !cs.Ready || cs.ContainerID == "" || p.Status.HostIP != "192.0.2.10" || p.Status.QOSClass != corev1.PodQOSBestEffort {
			t.Errorf("status %+v", p.Status)
		}
		if got := e.exec(t, cs.ContainerID, "sh", "-c", "echo $POD_NAME $GREETING; cat /www/index.html"); got != "web hello\nhello" {
			t.Errorf("env in the container: %q", got)
		}
		// Its log through the kubelet API, as `kubectl logs` reads it.
		code, body, err := e.kubeletGet(t, "/containerLogs/"+e.ns+"/web/main?tailLines=1", &e.clientCert)
		if err != nil || code != 200 || body != "log-line-2\n" {
			t.Errorf("kubelet API logs: %d %q %v", code, body, err)
		}
		if code, _, err := e.kubeletGet(t, "/containerLogs/"+e.ns+"/web/main", nil); err == nil && code == 200 {
			t.Error("the kubelet API served logs to a client without a certificate")
		}
	})

	t.Run("exec and port-forward through the kubelet API", func(t *testing.T) { testStreaming(t, e) })

	t.Run("volumes: emptyDir, configMap, secret, downwardAPI and the service-account token", func(t *testing.T) {
		if _, err := e.client.CoreV1().ConfigMaps(e.ns).Create(e.ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg"},
			Data: map[string]string{"greeting": "hi"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.client.CoreV1().Secrets(e.ns).Create(e.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sec"},
			Data: map[string][]byte{"password": []byte("s3cret")}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// Token automount left on: the API server adds the projected
		// kube-api-access volume every pod gets.
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "vols", Namespace: e.ns, Labels: map[string]string{"app": "vols"}}, Spec: corev1.PodSpec{
			NodeName: e.node, TerminationGracePeriodSeconds: ptr.To(int64(1)),
			Volumes: []corev1.Volume{
				{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
				{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
				{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sec"}}},
				{Name: "info", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
					{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}}}}},
			},
			Containers: []corev1.Container{{Name: "main", Image: containerd.BusyboxRef, ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"sleep", "3600"},
				VolumeMounts: []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}, {Name: "cfg", MountPath: "/etc/cfg"},
					{Name: "sec", MountPath: "/etc/sec", ReadOnly: true}, {Name: "info", MountPath: "/etc/info"}}}}}}
		if _, err := e.client.CoreV1().Pods(e.ns).Create(e.ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		got := e.waitPod(t, "vols", "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		id := got.Status.ContainerStatuses[0].ContainerID
		out := e.exec(t, id, "sh", "-c", "cat /etc/cfg/greeting /etc/sec/password; echo; cat /etc/info/labels; echo; "+
			"grep -c tmpfs /proc/mounts >/dev/null && grep ' /scratch ' /proc/mounts | cut -d' ' -f3; "+
			"cat /var/run/secrets/kubernetes.io/serviceaccount/namespace; echo; cat /var/run/secrets/kubernetes.io/serviceaccount/ca.crt; echo; "+
			"cut -d. -f1 /var/run/secrets/kubernetes.io/serviceaccount/token | wc -c")
		lines := strings.Split(out, "\n")
		if len(lines) < 6 || lines[0] != "his3cret" || lines[1] != `app="vols"` || lines[2] != "tmpfs" || lines[3] != e.ns || lines[4] != "test cluster CA" || lines[5] == "0" {
			t.Errorf("volumes as the container sees them:\n%s", out)
		}
	})

	t.Run("a static pod shows in the API server as a mirror pod with its status", func(t *testing.T) {
		file := filepath.Join(manifests, "static.yaml")
		// sleep is its container's PID 1 and ignores SIGTERM: a short
		// grace period, so the kill comes soon.
		body := fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: mirrored, namespace: %s}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {name: main, image: %s, imagePullPolicy: IfNotPresent, command: [sleep, \"3600\"]}\n",
			e.ns, containerd.BusyboxRef)
		if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		name := "mirrored-" + e.node
		p := e.waitPod(t, name, "mirror pod Running", func(p *corev1.Pod) bool {
			return p.Annotations["kubernetes.io/config.mirror"] != "" && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != ""
		})
		if p.Spec.NodeName != e.node {
			t.Errorf("mirror pod on node %q", p.Spec.NodeName)
		}
		if err := os.Remove(file); err != nil {
			t.Fatal(err)
		}
		harness.WaitFor(t, "mirror pod gone with its file", func() bool { return e.pod(name) == nil })
	})

	t.Run("updating a container's image replaces the container", func(t *testing.T) {
		e.create(t, "updated", corev1.RestartPolicyNever, corev1.Container{Command: []string{"sleep", "3600"}})
		before := e.waitPod(t, "updated", "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		before.Spec.Containers[0].Image = containerd.PauseRef // busybox too, another reference
		if _, err := e.client.CoreV1().Pods(e.ns).Update(e.ctx, before, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		old := before.Status.ContainerStatuses[0].ContainerID
		e.waitPod(t, "updated", "running the new image in a new container", func(p *corev1.Pod) bool {
			cs := p.Status.ContainerStatuses
			return len(cs) == 1 && cs[0].State.Running != nil && cs[0].ContainerID != old && cs[0].Image == containerd.PauseRef
		})
	})

	t.Run("a crashing container restarts with back-off", func(t *testing.T) {
		e.create(t, "crash", corev1.RestartPolicyAlways, corev1.Container{Command: []string{"sh", "-c", "exit 3"}})
		p := e.waitPod(t, "crash", "restarted and in back-off", func(p *corev1.Pod) bool {
			cs := p.Status.ContainerStatuses
			return len(cs) == 1 && cs[0].RestartCount >= 1 && cs[0].LastTerminationState.Terminated != nil &&
				cs[0].State.Waiting != nil && cs[0].State.Waiting.Reason == "CrashLoopBackOff"
		})
		if code := p.Status.ContainerStatuses[0].LastTerminationState.Terminated.ExitCode; code != 3 {
			t.Errorf("last exit code %d, want 3", code)
		}
	})

	t.Run("readiness flips both ways; a failing liveness probe restarts", func(t *testing.T) {
		e.create(t, "probed", corev1.RestartPolicyAlways, corev1.Container{
			Command:        []string{"sh", "-c", "touch /tmp/alive; exec sleep 3600"},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"test", "-f", "/tmp/ready"}}}, PeriodSeconds: 1},
			LivenessProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"test", "-f", "/tmp/alive"}}}, PeriodSeconds: 1, FailureThreshold: 2},
		})
		p := e.waitPod(t, "probed", "Running, not ready", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning && !ready(p) })
		id := p.Status.ContainerStatuses[0].ContainerID
		e.exec(t, id, "touch", "/tmp/ready")
		e.waitPod(t, "probed", "Ready", ready)
		e.exec(t, id, "rm", "/tmp/ready")
		e.waitPod(t, "probed", "not Ready again", func(p *corev1.Pod) bool { return !ready(p) })
		e.exec(t, id, "rm", "/tmp/alive")
		e.waitPod(t, "probed", "restarted by liveness", func(p *corev1.Pod) bool {
			return p.Status.ContainerStatuses[0].RestartCount >= 1 && p.Status.ContainerStatuses[0].State.Running != nil
		})
		if !e.hasEvent("probed", "Unhealthy", "liveness") {
			t.Error("no Unhealthy event for the liveness failure")
		}
	})

	t.Run("an image the node cannot get is a clear waiting reason", func(t *testing.T) {
		bad := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "noimage", Namespace: e.ns}, Spec: corev1.PodSpec{NodeName: e.node,
			AutomountServiceAccountToken: ptr.To(false), Containers: []corev1.Container{{Name: "main", Image: "hivelet.test/missing:1", ImagePullPolicy: corev1.PullNever}}}}
		if _, err := e.client.CoreV1().Pods(e.ns).Create(e.ctx, bad, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		e.waitPod(t, "noimage", "waiting with ErrImageNeverPull", func(p *corev1.Pod) bool {
			cs := p.Status.ContainerStatuses
			return p.Status.Phase == corev1.PodPending && len(cs) == 1 && cs[0].State.Waiting != nil &&
				cs[0].State.Waiting.Reason == "ErrImageNeverPull" && strings.Contains(cs[0].State.Waiting.Message, "hivelet.test/missing:1")
		})
		harness.WaitFor(t, "a Warning event on the pod", func() bool { return e.hasEvent("noimage", "Failed", "ErrImageNeverPull") })
	})

	t.Run("a pod the node cannot run gets a clear reason and event, and the kubelet carries on", func(t *testing.T) {
		mk := func(name string, mutate func(*corev1.Pod)) {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns}, Spec: corev1.PodSpec{NodeName: e.node,
				AutomountServiceAccountToken: ptr.To(false), TerminationGracePeriodSeconds: ptr.To(int64(0)),
				Containers: []corev1.Container{{Name: "main", Image: containerd.BusyboxRef, ImagePullPolicy: corev1.PullIfNotPresent,
					Command: []string{"sleep", "3600"}}}}}
			mutate(p)
			if _, err := e.client.CoreV1().Pods(e.ns).Create(e.ctx, p, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		waitingWith := func(reason, text string) func(*corev1.Pod) bool {
			return func(p *corev1.Pod) bool {
				cs := p.Status.ContainerStatuses
				return p.Status.Phase == corev1.PodPending && len(cs) == 1 && cs[0].State.Waiting != nil &&
					cs[0].State.Waiting.Reason == reason && strings.Contains(cs[0].State.Waiting.Message, text)
			}
		}
		mk("badvol", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "share", VolumeSource: corev1.VolumeSource{NFS: &corev1.NFSVolumeSource{Server: "192.0.2.1", Path: "/x"}}}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "share", MountPath: "/share"}}
		})
		mk("badimage", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "hivelet.test/Busybox:1" })
		mk("badprobe", func(p *corev1.Pod) {
			p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intOrName("nope")}}, PeriodSeconds: 1}
		})
		e.waitPod(t, "badvol", "ContainerCreating naming the volume", waitingWith("ContainerCreating", "volume share: this volume type is not supported"))
		e.waitPod(t, "badimage", "InvalidImageName", waitingWith("InvalidImageName", "hivelet.test/Busybox:1"))
		e.waitPod(t, "badprobe", "Running, never Ready", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning && !ready(p) })
		for pod, text := range map[string]string{"badvol": "not supported", "badimage": "InvalidImageName", "badprobe": `no container port named "nope"`} {
			harness.WaitFor(t, "an event on "+pod, func() bool {
				return e.hasEvent(pod, "Failed", text) || e.hasEvent(pod, "Unhealthy", text) || e.hasEvent(pod, "FailedMount", text)
			})
		}
		if e.kubelet.Exited() {
			t.Fatalf("kubelet exited:\n%s", harness.Tail(e.kubelet.Log(), 30))
		}
	})

	t.Run("images are pulled with the pod's imagePullSecrets, as imagePullPolicy says", func(t *testing.T) {
		reg := registry.New("puller", "pull-pw")
		img, err := images.Busybox([]string{"sh"})
		if err != nil {
			t.Fatal(err)
		}
		reg.Push("team/app", "v1", img)
		var ln net.Listener
		e.rt.Node.Must(t, func() error {
			ln, err = net.Listen("tcp", "127.0.0.1:0")
			return err
		})
		t.Cleanup(func() { ln.Close() })
		go reg.Serve(ln)
		host := ln.Addr().String()
		e.rt.AllowPlainHTTP(t, host)
		ref := host + "/team/app:v1"
		for name, password := range map[string]string{"regcred": "pull-pw", "badcred": "wrong"} {
			auth := base64.StdEncoding.EncodeToString([]byte("puller:" + password))
			cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, auth)
			if _, err := e.client.CoreV1().Secrets(e.ns).Create(e.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name},
				Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(cfg)}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		run := func(name, secret string, policy corev1.PullPolicy) {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns}, Spec: corev1.PodSpec{NodeName: e.node,
				AutomountServiceAccountToken: ptr.To(false), TerminationGracePeriodSeconds: ptr.To(int64(0)),
				Containers: []corev1.Container{{Name: "main", Image: ref, ImagePullPolicy: policy, Command: []string{"sleep", "3600"}}}}}
			if secret != "" {
				p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: secret}}
			}
			if _, err := e.client.CoreV1().Pods(e.ns).Create(e.ctx, p, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		pullFailed := func(p *corev1.Pod) bool {
			cs := p.Status.ContainerStatuses
			return len(cs) == 1 && cs[0].State.Waiting != nil && strings.Contains(cs[0].State.Waiting.Message, ref) &&
				(cs[0].State.Waiting.Reason == "ErrImagePull" || cs[0].State.Waiting.Reason == "ImagePullBackOff")
		}
		running := func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning }

		run("denied", "badcred", corev1.PullIfNotPresent)
		e.waitPod(t, "denied", "pull refused: ErrImagePull or ImagePullBackOff naming the image", pullFailed)
		if reg.Denied() == 0 || reg.Resolves("team/app:v1") != 0 {
			t.Errorf("registry saw %d refused and %d accepted manifest requests; want refusals only", reg.Denied(), reg.Resolves("team/app:v1"))
		}
		e.waitPod(t, "denied", "backing off: ImagePullBackOff", func(p *corev1.Pod) bool {
			cs := p.Status.ContainerStatuses
			return len(cs) == 1 && cs[0].State.Waiting != nil && cs[0].State.Waiting.Reason == "ImagePullBackOff"
		})

		run("pulled", "regcred", corev1.PullIfNotPresent)
		p := e.waitPod(t, "pulled", "Running from the pulled image", running)
		if got := p.Status.ContainerStatuses[0]; got.Image != ref || !strings.Contains(got.ImageID, img.ManifestDigest) {
			t.Errorf("container status image %q id %q", got.Image, got.ImageID)
		}
		pulls := reg.Resolves("team/app:v1")
		if pulls == 0 {
			t.Fatal("Running without the registry having served the manifest")
		}

		run("cached", "", corev1.PullIfNotPresent)
		e.waitPod(t, "cached", "Running from the image already on the node", running)
		if got := reg.Resolves("team/app:v1"); got != pulls {
			t.Errorf("IfNotPresent with the image present asked the registry (%d -> %d manifest requests)", pulls, got)
		}

		run("always", "regcred", corev1.PullAlways)
		e.waitPod(t, "always", "Running after pulling again", running)
		if got := reg.Resolves("team/app:v1"); got <= pulls {
			t.Errorf("Always did not ask the registry (%d manifest requests before and after)", got)
		}
		run("always-denied", "badcred", corev1.PullAlways)
		e.waitPod(t, "always-denied", "refused although the image is present", pullFailed)
	})

	t.Run("a runtime that goes down makes the node NotReady, and back", func(t *testing.T) {
		nodeReady := func() corev1.ConditionStatus {
			n, err := e.client.CoreV1().Nodes().Get(e.ctx, e.node, metav1.GetOptions{})
			if err != nil {
				return ""
			}
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady {
					return c.Status
				}
			}
			return ""
		}
		healthz := func() string {
			out, _ := exec.Command("nsenter", "--net="+e.rt.Node.Path(), "--", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
				"http://127.0.0.1:10248/healthz").Output()
			return string(out)
		}
		if got := healthz(); got != "200" {
			t.Errorf("/healthz with the runtime up: %q", got)
		}
		e.rt.Stop()
		harness.WaitFor(t, "node NotReady with containerd down", func() bool { return nodeReady() == corev1.ConditionFalse })
		if got := healthz(); got != "500" {
			t.Errorf("/healthz with the runtime down: %q, want 500", got)
		}
		e.rt.Start(t)
		harness.WaitFor(t, "node Ready again", func() bool { return nodeReady() == corev1.ConditionTrue })
	})

	t.Run("a kubelet restart leaves running containers alone and removes what lost its pod", func(t *testing.T) {
		e.create(t, "orphan", corev1.RestartPolicyAlways, corev1.Container{Command: []string{"sleep", "3600"}})
		orphanUID := e.waitPod(t, "orphan", "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning }).UID
		before := e.pod("web").Status.ContainerStatuses[0]
		e.kubelet.Stop(syscall.SIGTERM)
		// Deleted while no kubelet runs: nothing is told to stop it.
		if err := e.client.CoreV1().Pods(e.ns).Delete(e.ctx, "orphan", metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}); err != nil {
			t.Fatal(err)
		}
		e.start()
		harness.WaitFor(t, "the orphan's containers, sandbox and cgroups removed", func() bool {
			sel := map[string]string{"io.kubernetes.pod.uid": string(orphanUID)}
			cs, err1 := e.rt.RT.ListContainers(e.ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{LabelSelector: sel}})
			sbs, err2 := e.rt.RT.ListPodSandbox(e.ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{LabelSelector: sel}})
			dirs, _ := filepath.Glob(fmt.Sprintf("/sys/fs/cgroup/*/%s/kubepods/*/pod%s", e.cgroupName, orphanUID))
			return err1 == nil && err2 == nil && len(cs.Containers) == 0 && len(sbs.Items) == 0 && len(dirs) == 0
		})
		time.Sleep(3 * time.Second) // a few relists and syncs
		after := e.waitPod(t, "web", "still Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		got := after.Status.ContainerStatuses[0]
		if got.ContainerID != before.ContainerID || got.RestartCount != before.RestartCount || !ready(after) {
			t.Errorf("after restart: %s restarts %d ready %v; before: %s restarts %d", got.ContainerID, got.RestartCount, ready(after), before.ContainerID, before.RestartCount)
		}
	})

	t.Run("deletion: SIGTERM, the grace period, then SIGKILL; the pod object goes", func(t *testing.T) {
		e.create(t, "stubborn", corev1.RestartPolicyAlways, corev1.Container{Command: []string{"sh", "-c", "trap '' TERM; while true; do sleep 1; done"}})
		uid := e.waitPod(t, "stubborn", "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning }).UID
		start := time.Now()
		if err := e.client.CoreV1().Pods(e.ns).Delete(e.ctx, "stubborn", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		harness.WaitFor(t, "pod object deleted", func() bool {
			_, err := e.client.CoreV1().Pods(e.ns).Get(e.ctx, "stubborn", metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		})
		if dirs, _ := filepath.Glob(fmt.Sprintf("/sys/fs/cgroup/*/%s/kubepods/besteffort/pod%s", e.cgroupName, uid)); len(dirs) > 0 {
			t.Errorf("pod cgroups left behind: %v", dirs)
		}
		if took := time.Since(start); took < 2*time.Second {
			t.Errorf("a container ignoring SIGTERM was gone after %v, before its 2 s grace period", took)
		}
		list, err := e.rt.RT.ListContainers(e.ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
			LabelSelector: map[string]string{"io.kubernetes.pod.name": "stubborn"}}})
		if err != nil || len(list.Containers) != 0 {
			t.Errorf("containers left: %v %v", list, err)
		}
		// A deleted pod's memory-backed volume is unmounted and its
		// directory removed.
		if err := e.client.CoreV1().Pods(e.ns).Delete(e.ctx, "vols", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		harness.WaitFor(t, "the deleted pod's tmpfs unmounted", func() bool {
			mounts, _ := os.ReadFile("/proc/self/mounts")
			return !strings.Contains(string(mounts), "/volumes/scratch")
		})
	})
}

func TestPrivilegedKubeletLiteStaticPod(t *testing.T) {
	dir := t.TempDir()
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: static}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: main, image: %s, imagePullPolicy: IfNotPresent, command: [sleep, "3600"]}
`, containerd.BusyboxRef)
	if err := os.WriteFile(filepath.Join(dir, "static.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	// `hivelet kubelet`, the subcommand of the agent's binary, here; the
	// lean hivelet-kubelet binary everywhere else.
	e := newNode(t, false, dir, viaHivelet)
	running := func() int {
		list, err := e.rt.RT.ListContainers(e.ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
			State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}})
		if err != nil {
			return -1
		}
		n := 0
		for _, c := range list.Containers {
			if c.Labels["io.kubernetes.pod.name"] == "static-"+e.node {
				n++
			}
		}
		return n
	}
	harness.WaitFor(t, "static pod running without an API server", func() bool { return running() == 1 })
	if err := os.Remove(filepath.Join(dir, "static.yaml")); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, "static pod stopped once its file is gone", func() bool { return running() == 0 })
}

func intOrName(name string) intstr.IntOrString { return intstr.FromString(name) }
