package kubelet

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"

	"github.com/hivelet/hivelet/test/containerd"
	"github.com/hivelet/hivelet/test/harness"
)

// runPod creates a pod bound to this node from spec (busybox images,
// no token, a short grace period), each container sleeping unless it
// says otherwise.
func (e *env) runPod(t testing.TB, name string, labels map[string]string, spec corev1.PodSpec) {
	t.Helper()
	spec.NodeName = e.node
	spec.AutomountServiceAccountToken = ptr.To(false)
	if spec.TerminationGracePeriodSeconds == nil {
		spec.TerminationGracePeriodSeconds = ptr.To(int64(0))
	}
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range cs {
			cs[i].Image, cs[i].ImagePullPolicy = containerd.BusyboxRef, corev1.PullIfNotPresent
			if cs[i].Command == nil {
				cs[i].Command = []string{"sleep", "3600"}
			}
		}
	}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns, Labels: labels}, Spec: spec}
	if _, err := e.client.CoreV1().Pods(e.ns).Create(e.ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func running(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning }

// waitingWith matches a pod whose container name waits for reason with
// text in its message.
func waitingWith(name, reason, text string) func(*corev1.Pod) bool {
	return func(p *corev1.Pod) bool {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name == name && cs.State.Waiting != nil && cs.State.Waiting.Reason == reason && strings.Contains(cs.State.Waiting.Message, text) {
				return true
			}
		}
		return false
	}
}

func containerID(p *corev1.Pod, name string) string {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == name {
			return cs.ContainerID
		}
	}
	return ""
}

// rootDir is the kubelet's --root-dir.
func (e *env) rootDir() string {
	for i, a := range e.args {
		if a == "--root-dir" && i+1 < len(e.args) {
			return e.args[i+1]
		}
	}
	return ""
}

func emptyDir(name string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
}

// TestPrivilegedKubeletLitePodContract runs hostile and security-minded
// pods on real containerd + runc: nothing may leave a volume, delete or
// read a host file, or take the kubelet down, and what the pod asks of
// its security context is what its processes get.
func TestPrivilegedKubeletLitePodContract(t *testing.T) {
	manifests := t.TempDir()
	e := newEnv(t, true, manifests)
	// A node of a cluster with DNS: restarting the kubelet with the
	// settings also shows a restart changes nothing for running pods.
	e.kubelet.Stop(syscall.SIGTERM)
	// With Webhook authorization, the API server's kubelet client is
	// authorized as kubeadm sets it up: system:kubelet-api-admin.
	if _, err := e.client.RbacV1().ClusterRoleBindings().Create(e.ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "hivelet-test-kubelet-api-admin"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:kubelet-api-admin"},
		Subjects: []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: "kube-apiserver-kubelet-client"}}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	e.args = append(e.args, "--cluster-dns", "10.96.0.10", "--cluster-domain", "cluster.local",
		"--container-log-max-size", "2Ki", "--container-log-max-files", "3",
		"--authentication-token-webhook", "--authorization-mode", "Webhook")
	e.start()
	marker := fmt.Sprintf("hivelet-escape-%d", time.Now().UnixNano())
	t.Cleanup(func() { os.Remove(filepath.Join("/tmp", marker)) })

	t.Run("a subPath link out of its volume is refused; inside, and naming a file, a subPath works", func(t *testing.T) {
		e.runPod(t, "escape", nil, corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Volumes: []corev1.Volume{emptyDir("data")},
			InitContainers: []corev1.Container{{Name: "plant", Command: []string{"sh", "-c", "ln -s / /data/escape && ln -s /tmp /data/tmp"},
				VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}},
			Containers: []corev1.Container{
				{Name: "root", Command: []string{"sh", "-c", "touch /host/tmp/" + marker + "; sleep 3600"},
					VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/host", SubPath: "escape"}}},
				{Name: "tmp", Command: []string{"sh", "-c", "touch /host-tmp/" + marker + "; sleep 3600"},
					VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/host-tmp", SubPath: "tmp/deeper"}}},
			}})
		e.waitPod(t, "escape", "both containers refused: the subPath leaves its volume", func(p *corev1.Pod) bool {
			return waitingWith("root", "CreateContainerConfigError", "leaves its volume")(p) &&
				waitingWith("tmp", "CreateContainerConfigError", "leaves its volume")(p)
		})
		for _, p := range []string{filepath.Join("/tmp", marker), "/tmp/deeper"} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("the pod wrote %s on the host", p)
			}
		}

		e.runPod(t, "subpaths", nil, corev1.PodSpec{Volumes: []corev1.Volume{emptyDir("data")},
			InitContainers: []corev1.Container{{Name: "fill", Command: []string{"sh", "-c", "mkdir -p /data/real && echo in-volume > /data/real/file && ln -s real /data/alias"},
				VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}},
			Containers: []corev1.Container{{Name: "main",
				Env: []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
				VolumeMounts: []corev1.VolumeMount{
					{Name: "data", MountPath: "/all"},
					{Name: "data", MountPath: "/dir", SubPath: "alias"}, // a link that stays inside
					{Name: "data", MountPath: "/etc/file.conf", SubPath: "real/file"},
					{Name: "data", MountPath: "/mine", SubPathExpr: "per-pod/$(POD_NAME)"},
				}}}})
		p := e.waitPod(t, "subpaths", "Running", running)
		out := e.exec(t, containerID(p, "main"), "sh", "-c", "cat /dir/file /etc/file.conf && touch /mine/x && ls /all/per-pod/subpaths")
		if out != "in-volume\nin-volume\nx" {
			t.Errorf("subPaths as the container sees them: %q", out)
		}
	})

	t.Run("API volumes are read-only; a re-pointed ..data deletes nothing on the next refresh", func(t *testing.T) {
		hostDir := t.TempDir()
		if err := os.WriteFile(filepath.Join(hostDir, "keep"), []byte("host"), 0o644); err != nil {
			t.Fatal(err)
		}
		e.runPod(t, "dapi", map[string]string{"rev": "1"}, corev1.PodSpec{
			Volumes: []corev1.Volume{{Name: "info", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
				Items: []corev1.DownwardAPIVolumeFile{{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}}}}}},
			Containers: []corev1.Container{{Name: "main", VolumeMounts: []corev1.VolumeMount{{Name: "info", MountPath: "/etc/info"}}}}})
		p := e.waitPod(t, "dapi", "Running", running)
		id := containerID(p, "main")
		if out := e.exec(t, id, "sh", "-c", "rm -f /etc/info/..data 2>&1; ln -s "+hostDir+" /etc/info/..other 2>&1; cat /etc/info/labels"); strings.Count(out, "Read-only file system") != 2 || !strings.HasSuffix(out, `rev="1"`) {
			t.Errorf("re-pointing ..data from the container: %q, want a read-only refusal", out)
		}
		// What a container could do before the volume was read-only, done
		// on the host: ..data and the published name point at a host dir.
		vol := filepath.Join(e.rootDir(), "pods", string(p.UID), "volumes", "info")
		for name, target := range map[string]string{"..data": hostDir, "labels": filepath.Join(hostDir, "keep")} {
			if err := os.Remove(filepath.Join(vol, name)); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, filepath.Join(vol, name)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.client.CoreV1().Pods(e.ns).Patch(e.ctx, "dapi", types.MergePatchType, []byte(`{"metadata":{"labels":{"rev":"2"}}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		harness.WaitFor(t, "the volume refreshed with the new label", func() bool {
			return e.exec(t, id, "cat", "/etc/info/labels") == `rev="2"`
		})
		if b, err := os.ReadFile(filepath.Join(hostDir, "keep")); err != nil || string(b) != "host" {
			t.Errorf("the host dir behind the re-pointed link was touched: %q %v", b, err)
		}
	})

	t.Run("secrets on tmpfs with their modes; fsGroup owns the volumes", func(t *testing.T) {
		if _, err := e.client.CoreV1().Secrets(e.ns).Create(e.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "modes"},
			Data: map[string][]byte{"a": []byte("1"), "b": []byte("2")}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		e.runPod(t, "owned", nil, corev1.PodSpec{SecurityContext: &corev1.PodSecurityContext{FSGroup: ptr.To(int64(2000))},
			Volumes: []corev1.Volume{emptyDir("scratch"), {Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName: "modes", DefaultMode: ptr.To(int32(0o400)), Items: []corev1.KeyToPath{{Key: "a", Path: "a"}, {Key: "b", Path: "sub/b", Mode: ptr.To(int32(0o600))}}}}}},
			Containers: []corev1.Container{{Name: "main", VolumeMounts: []corev1.VolumeMount{{Name: "sec", MountPath: "/etc/sec"}, {Name: "scratch", MountPath: "/scratch"}}}}})
		p := e.waitPod(t, "owned", "Running", running)
		out := e.exec(t, containerID(p, "main"), "sh", "-c",
			"stat -L -c '%a %g' /etc/sec/a /etc/sec/sub/b; stat -c '%g %A' /scratch; grep ' /etc/sec ' /proc/mounts | cut -d' ' -f3,4 | cut -d, -f1; touch /etc/sec/new 2>&1 | grep -c Read-only")
		want := "440 2000\n640 2000\n2000 drwxrwsrwx\ntmpfs ro\n1"
		if out != want {
			t.Errorf("secret and emptyDir as the container sees them:\n%s\nwant:\n%s", out, want)
		}
	})

	t.Run("resourceFieldRef with divisor 1E runs, and the kubelet stays up", func(t *testing.T) {
		e.runPod(t, "divisor", nil, corev1.PodSpec{Containers: []corev1.Container{{Name: "main",
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("64Mi")}},
			Env: []corev1.EnvVar{
				{Name: "MEM", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1E")}}},
				{Name: "MCPU", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu", Divisor: resource.MustParse("1m")}}},
			}}}})
		p := e.waitPod(t, "divisor", "Running", running)
		if out := e.exec(t, containerID(p, "main"), "sh", "-c", "echo $MEM $MCPU"); out != "1 500" {
			t.Errorf("resource env: %q, want \"1 500\"", out)
		}
		if e.kubelet.Exited() {
			t.Fatalf("kubelet exited:\n%s", harness.Tail(e.kubelet.Log(), 30))
		}
		e.waitPod(t, "subpaths", "another pod still Running", running)
	})

	t.Run("the security context is what the container's processes get", func(t *testing.T) {
		status := "id -u; id -g; id -G; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/1/status | tr -d '\\t'; touch /rootfs 2>/dev/null && echo rw || echo ro"
		e.runPod(t, "locked", nil, corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{RunAsUser: ptr.To(int64(1000)), RunAsGroup: ptr.To(int64(3000)), SupplementalGroups: []int64{4000},
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{Name: "main", SecurityContext: &corev1.SecurityContext{
				ReadOnlyRootFilesystem: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false),
				Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}}})
		e.runPod(t, "open", nil, corev1.PodSpec{Containers: []corev1.Container{{Name: "main"}}})
		locked := e.waitPod(t, "locked", "Running", running)
		open := e.waitPod(t, "open", "Running", running)
		if out := e.exec(t, containerID(locked, "main"), "sh", "-c", status); out != "1000\n3000\n3000 4000\nCapEff:0000000000000000\nNoNewPrivs:1\nSeccomp:2\nro" {
			t.Errorf("locked-down container:\n%s", out)
		}
		out := e.exec(t, containerID(open, "main"), "sh", "-c", status)
		if !strings.HasPrefix(out, "0\n0\n") || strings.Contains(out, "CapEff:0000000000000000") || !strings.Contains(out, "NoNewPrivs:0\nSeccomp:0\nrw") {
			t.Errorf("a container that asks for nothing (the control):\n%s", out)
		}

		e.runPod(t, "nonroot", nil, corev1.PodSpec{SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true)},
			Containers: []corev1.Container{{Name: "main"}}})
		e.waitPod(t, "nonroot", "refused: the image runs as root", waitingWith("main", "CreateContainerConfigError", "image will run as root"))

		e.runPod(t, "priv", nil, corev1.PodSpec{ShareProcessNamespace: ptr.To(true), Containers: []corev1.Container{
			{Name: "main", SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}},
			{Name: "other", Command: []string{"sleep", "7777"}}}})
		p := e.waitPod(t, "priv", "Running", func(p *corev1.Pod) bool {
			return running(p) && len(p.Status.ContainerStatuses) == 2 && p.Status.ContainerStatuses[1].State.Running != nil
		})
		out = e.exec(t, containerID(p, "main"), "sh", "-c", "grep ^CapEff: /proc/self/status | tr -d '\\t'; ps -o args | grep -c '^sleep 7777'")
		if !strings.HasPrefix(out, "CapEff:000001ff") || !strings.HasSuffix(out, "\n1") {
			t.Errorf("privileged, sharing the pod's PID namespace:\n%s", out)
		}
	})

	t.Run("sysctls: the safe set applies, an unsafe one fails the pod", func(t *testing.T) {
		e.runPod(t, "sysctl", nil, corev1.PodSpec{SecurityContext: &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "80"}}},
			Containers: []corev1.Container{{Name: "main"}}})
		p := e.waitPod(t, "sysctl", "Running", running)
		if out := e.exec(t, containerID(p, "main"), "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"); out != "80" {
			t.Errorf("sysctl in the pod: %q", out)
		}
		e.runPod(t, "unsafe", nil, corev1.PodSpec{SecurityContext: &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "net.core.somaxconn", Value: "1024"}}},
			Containers: []corev1.Container{{Name: "main"}}})
		e.waitPod(t, "unsafe", "Failed with SysctlForbidden", func(p *corev1.Pod) bool {
			return p.Status.Phase == corev1.PodFailed && p.Status.Reason == "SysctlForbidden" && strings.Contains(p.Status.Message, "net.core.somaxconn")
		})
		harness.WaitFor(t, "a SysctlForbidden event", func() bool { return e.hasEvent("unsafe", "SysctlForbidden", "not allowlisted") })
	})

	t.Run("a hostNetwork pod runs with the node's address and hostname", func(t *testing.T) {
		e.runPod(t, "hostnet", nil, corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{{Name: "main"}}})
		p := e.waitPod(t, "hostnet", "Running with the node's IP", func(p *corev1.Pod) bool { return running(p) && p.Status.PodIP == "192.0.2.10" })
		host, _ := os.Hostname()
		if out := e.exec(t, containerID(p, "main"), "sh", "-c", "hostname; ip -4 addr show lo | grep -c 192.0.2.10"); out != host+"\n1" {
			t.Errorf("in the hostNetwork pod: %q, want the node's hostname %q and address", out, host)
		}
	})

	t.Run("a static manifest with names that would reach host paths is refused", func(t *testing.T) {
		body := fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: traversal}\nspec:\n  containers:\n  - {name: ../../../../etc, image: %s, command: [sleep, \"3600\"]}\n", containerd.BusyboxRef)
		if err := os.WriteFile(filepath.Join(manifests, "bad.yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		harness.WaitFor(t, "the manifest rejected in the log, naming the field", func() bool {
			return strings.Contains(e.kubelet.Log(), "Static pod manifest rejected") && strings.Contains(e.kubelet.Log(), "spec.containers[0].name")
		})
		if e.pod("traversal-"+e.node) != nil {
			t.Error("a mirror pod exists for the refused manifest")
		}
		if e.kubelet.Exited() {
			t.Fatalf("kubelet exited:\n%s", harness.Tail(e.kubelet.Log(), 30))
		}
	})

	t.Run("name resolution and environment as upstream: DNS policy, hosts file, envFrom, Service variables", func(t *testing.T) {
		backend, err := e.client.CoreV1().Services(e.ns).Create(e.ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "backend"},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		k8s, err := e.client.CoreV1().Services("default").Get(e.ctx, "kubernetes", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.client.CoreV1().ConfigMaps(e.ns).Create(e.ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "envsrc"},
			Data: map[string]string{"A": "from-configmap", "OVERRIDDEN": "no"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		e.runPod(t, "named", nil, corev1.PodSpec{Hostname: "web-0", Subdomain: "web",
			HostAliases: []corev1.HostAlias{{IP: "192.0.2.7", Hostnames: []string{"db", "db.local"}}},
			DNSConfig:   &corev1.PodDNSConfig{Searches: []string{"extra.example"}},
			Containers: []corev1.Container{{Name: "main",
				EnvFrom: []corev1.EnvFromSource{{Prefix: "CFG_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "envsrc"}}},
					{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "missing"}, Optional: ptr.To(true)}}},
				Env: []corev1.EnvVar{{Name: "CFG_OVERRIDDEN", Value: "yes"}, {Name: "REF", Value: "$(BACKEND_SERVICE_HOST):$(BACKEND_SERVICE_PORT_HTTP)"}}}}})
		e.runPod(t, "nolinks", nil, corev1.PodSpec{EnableServiceLinks: ptr.To(false), DNSPolicy: corev1.DNSDefault, Containers: []corev1.Container{{Name: "main"}}})
		p := e.waitPod(t, "named", "Running", running)
		ip := backend.Spec.ClusterIP
		out := e.exec(t, containerID(p, "main"), "sh", "-c", "cat /etc/resolv.conf /etc/hosts; hostname; echo $CFG_A $CFG_OVERRIDDEN $REF $BACKEND_PORT $KUBERNETES_SERVICE_HOST")
		for _, want := range []string{
			"nameserver 10.96.0.10", "search " + e.ns + ".svc.cluster.local svc.cluster.local cluster.local", "extra.example", "options ndots:5",
			p.Status.PodIP + "\tweb-0.web." + e.ns + ".svc.cluster.local\tweb-0", "192.0.2.7\tdb\tdb.local",
			"\nweb-0\n", "from-configmap yes " + ip + ":8080 tcp://" + ip + ":8080 " + k8s.Spec.ClusterIP,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("the pod sees no %q in:\n%s", want, out)
			}
		}
		p = e.waitPod(t, "nolinks", "Running", running)
		out = e.exec(t, containerID(p, "main"), "sh", "-c", "echo ${BACKEND_SERVICE_HOST:-none} $KUBERNETES_SERVICE_HOST; grep -c '^nameserver 10.96.0.10' /etc/resolv.conf")
		if out != "none "+k8s.Spec.ClusterIP+"\n0" {
			t.Errorf("enableServiceLinks false and dnsPolicy Default: %q", out)
		}
	})

	t.Run("termination messages and activeDeadlineSeconds as upstream", func(t *testing.T) {
		e.runPod(t, "said", nil, corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
			SecurityContext: &corev1.PodSecurityContext{RunAsUser: ptr.To(int64(1000))},
			Containers: []corev1.Container{
				{Name: "file", Command: []string{"sh", "-c", "printf DONE > /dev/termination-log"}, TerminationMessagePath: "/dev/termination-log"},
				{Name: "custom", Command: []string{"sh", "-c", "printf custom > /tmp/msg; exit 2"}, TerminationMessagePath: "/tmp/msg"},
				{Name: "logs", Command: []string{"sh", "-c", "echo first; echo oops; exit 1"}, TerminationMessagePath: "/dev/termination-log",
					TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError},
			}})
		p := e.waitPod(t, "said", "Failed with every container terminated", func(p *corev1.Pod) bool {
			if p.Status.Phase != corev1.PodFailed || len(p.Status.ContainerStatuses) != 3 {
				return false
			}
			for _, cs := range p.Status.ContainerStatuses {
				if cs.State.Terminated == nil {
					return false
				}
			}
			return true
		})
		want := map[string]string{"file": "DONE", "custom": "custom", "logs": "first\noops\n"}
		for _, cs := range p.Status.ContainerStatuses {
			if got := cs.State.Terminated.Message; got != want[cs.Name] {
				t.Errorf("container %s: termination message %q, want %q", cs.Name, got, want[cs.Name])
			}
		}

		start := time.Now()
		e.runPod(t, "deadline", nil, corev1.PodSpec{ActiveDeadlineSeconds: ptr.To(int64(3)), Containers: []corev1.Container{{Name: "main"}}})
		e.waitPod(t, "deadline", "Running", running)
		p = e.waitPod(t, "deadline", "Failed with DeadlineExceeded", func(p *corev1.Pod) bool {
			return p.Status.Phase == corev1.PodFailed && p.Status.Reason == "DeadlineExceeded"
		})
		if took := time.Since(start); took < 3*time.Second {
			t.Errorf("failed after %v, before its 3 s deadline", took)
		}
		if cs := p.Status.ContainerStatuses; len(cs) != 1 || cs[0].State.Running != nil {
			t.Errorf("the container still runs past the deadline: %+v", cs)
		}
		time.Sleep(resyncGrace)
		if p := e.pod("deadline"); p == nil || p.Status.Phase != corev1.PodFailed || p.Status.Reason != "DeadlineExceeded" {
			t.Errorf("a later sync rewrote the failed pod's status: %+v", p.Status)
		}
	})

	t.Run("logs under the pod logs dir, rotated; dead instances pruned to the last one", func(t *testing.T) {
		e.runPod(t, "chatty", nil, corev1.PodSpec{Containers: []corev1.Container{{Name: "main",
			Command: []string{"sh", "-c", "while true; do echo 0123456789abcdef0123456789abcdef0123456789abcdef; sleep 0.02; done"}}}})
		e.runPod(t, "crashy", nil, corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Command: []string{"sh", "-c", "echo bye; exit 1"}}}})
		p := e.waitPod(t, "chatty", "Running", running)
		dir := filepath.Join(e.rootDir(), "logs", e.ns+"_chatty_"+string(p.UID), "main")
		harness.WaitFor(t, "a rotated log beside the live one", func() bool {
			rotated, _ := filepath.Glob(filepath.Join(dir, "0.log.*"))
			return len(rotated) >= 1
		})
		harness.WaitFor(t, "old rotations removed: 3 files at most", func() bool {
			all, _ := filepath.Glob(filepath.Join(dir, "0.log*"))
			rotated, _ := filepath.Glob(filepath.Join(dir, "0.log.*"))
			return len(rotated) == 2 && len(all) == 3
		})
		// Right after a rotation the live file may still be empty.
		harness.WaitFor(t, "the last line through the kubelet API after rotation", func() bool {
			code, body, err := e.kubeletGet(t, "/containerLogs/"+e.ns+"/chatty/main?tailLines=1", &e.clientCert)
			return err == nil && code == 200 && strings.HasPrefix(body, "0123456789abcdef")
		})

		c := e.waitPod(t, "crashy", "restarted twice", func(p *corev1.Pod) bool {
			return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 2
		})
		instances := func() int {
			list, err := e.rt.RT.ListContainers(e.ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
				LabelSelector: map[string]string{"io.kubernetes.pod.uid": string(c.UID)}}})
			if err != nil {
				return -1
			}
			return len(list.Containers)
		}
		harness.WaitFor(t, "at most the current and the previous instance kept", func() bool { return instances() <= 2 })
		logsLeft, _ := filepath.Glob(filepath.Join(e.rootDir(), "logs", e.ns+"_crashy_"+string(c.UID), "main", "*.log"))
		if len(logsLeft) > 2 {
			t.Errorf("logs of pruned instances left: %v", logsLeft)
		}
	})

	t.Run("sidecars: started in order, kept running and restarted, stopped after the main containers", func(t *testing.T) {
		always := corev1.ContainerRestartPolicyAlways
		shared := []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}}
		e.runPod(t, "sidecar", nil, corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Volumes: []corev1.Volume{emptyDir("shared")},
			InitContainers: []corev1.Container{
				{Name: "proxy", RestartPolicy: &always, VolumeMounts: shared,
					Command:      []string{"sh", "-c", `trap "exit 0" TERM; sleep 1; echo up >> /shared/proxy; while true; do sleep 0.2; done`},
					StartupProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"test", "-f", "/shared/proxy"}}}, PeriodSeconds: 1}},
				{Name: "setup", VolumeMounts: shared, Command: []string{"sh", "-c", "test -f /shared/proxy && echo proxy-was-up > /shared/setup"}},
			},
			Containers: []corev1.Container{{Name: "main", VolumeMounts: shared,
				Command: []string{"sh", "-c", "cat /shared/setup; while [ ! -f /shared/done ]; do sleep 0.2; done"}}}})
		init := func(p *corev1.Pod, name string) corev1.ContainerStatus {
			for _, cs := range p.Status.InitContainerStatuses {
				if cs.Name == name {
					return cs
				}
			}
			return corev1.ContainerStatus{}
		}
		p := e.waitPod(t, "sidecar", "Running with the sidecar started and the init container done", func(p *corev1.Pod) bool {
			px, su := init(p, "proxy"), init(p, "setup")
			return running(p) && px.State.Running != nil && px.Started != nil && *px.Started && su.State.Terminated != nil && su.State.Terminated.ExitCode == 0 &&
				len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Running != nil
		})
		mainID := containerID(p, "main")
		if code, body, err := e.kubeletGet(t, "/containerLogs/"+e.ns+"/sidecar/main", &e.clientCert); err != nil || code != 200 || body != "proxy-was-up\n" {
			t.Errorf("the init container after the sidecar: main logged %d %q %v", code, body, err)
		}
		e.exec(t, init(p, "proxy").ContainerID, "kill", "1")
		p = e.waitPod(t, "sidecar", "the sidecar restarted although the pod's policy is Never", func(p *corev1.Pod) bool {
			px := init(p, "proxy")
			return px.RestartCount >= 1 && px.State.Running != nil
		})
		if containerID(p, "main") != mainID {
			t.Error("the main container was replaced when its sidecar restarted")
		}
		e.exec(t, mainID, "touch", "/shared/done")
		p = e.waitPod(t, "sidecar", "Succeeded, the sidecar stopped after the main container", func(p *corev1.Pod) bool {
			return p.Status.Phase == corev1.PodSucceeded && init(p, "proxy").State.Terminated != nil
		})
		px := init(p, "proxy").State.Terminated
		main := p.Status.ContainerStatuses[0].State.Terminated
		if main == nil || px.FinishedAt.Before(&main.FinishedAt) {
			t.Errorf("the sidecar finished (%v) before the main container (%+v)", px.FinishedAt, main)
		}
	})

	t.Run("lifecycle hooks: exec, httpGet and sleep; a failing postStart kills the container", func(t *testing.T) {
		out := t.TempDir()
		hostOut := []corev1.Volume{{Name: "out", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: out}}}}
		outMount := []corev1.VolumeMount{{Name: "out", MountPath: "/out"}}
		e.runPod(t, "handler", nil, corev1.PodSpec{Containers: []corev1.Container{{Name: "main",
			Command: []string{"sh", "-c", "mkdir -p /www && echo ok > /www/ok && exec httpd -f -p 8080 -h /www"}}}})
		handler := e.waitPod(t, "handler", "Running with an IP", func(p *corev1.Pod) bool { return running(p) && p.Status.PodIP != "" })
		get := func(path string, port int) *corev1.LifecycleHandler {
			return &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Host: handler.Status.PodIP, Path: path, Port: intstr.FromInt(port)}}
		}
		e.runPod(t, "hooked", nil, corev1.PodSpec{TerminationGracePeriodSeconds: ptr.To(int64(10)), Volumes: hostOut, Containers: []corev1.Container{{Name: "main", VolumeMounts: outMount,
			Lifecycle: &corev1.Lifecycle{
				PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo poststart > /out/poststart"}}},
				PreStop:   &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo prestop > /out/prestop"}}},
			}},
			{Name: "http", Lifecycle: &corev1.Lifecycle{PostStart: get("/ok", 8080)}},
			{Name: "sleeper", Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 3}}}},
		}})
		e.waitPod(t, "hooked", "Running, every container", func(p *corev1.Pod) bool {
			n := 0
			for _, cs := range p.Status.ContainerStatuses {
				if cs.State.Running != nil {
					n++
				}
			}
			return running(p) && n == 3
		})
		if b, err := os.ReadFile(filepath.Join(out, "poststart")); err != nil || string(b) != "poststart\n" {
			t.Errorf("postStart exec: %q %v", b, err)
		}
		start := time.Now()
		if err := e.client.CoreV1().Pods(e.ns).Delete(e.ctx, "hooked", metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(10))}); err != nil {
			t.Fatal(err)
		}
		harness.WaitFor(t, "the pod gone", func() bool { return e.pod("hooked") == nil })
		if took := time.Since(start); took < 3*time.Second {
			t.Errorf("deleted in %v: the 3 s preStop sleep did not run", took)
		}
		if b, err := os.ReadFile(filepath.Join(out, "prestop")); err != nil || string(b) != "prestop\n" {
			t.Errorf("preStop exec: %q %v", b, err)
		}

		e.runPod(t, "badhook", nil, corev1.PodSpec{RestartPolicy: corev1.RestartPolicyAlways,
			Containers: []corev1.Container{{Name: "main", Lifecycle: &corev1.Lifecycle{PostStart: get("/ok", 8081)}}}})
		harness.WaitFor(t, "a FailedPostStartHook event", func() bool { return e.hasEvent("badhook", "FailedPostStartHook", "PostStartHook failed") })
		e.waitPod(t, "badhook", "the container killed and restarted", func(p *corev1.Pod) bool {
			cs := p.Status.ContainerStatuses
			return len(cs) == 1 && cs[0].RestartCount >= 1
		})
	})

	t.Run("readiness gates hold Ready until their condition is True; other writers' conditions are kept", func(t *testing.T) {
		const gate = "example.com/feature-ready"
		e.runPod(t, "gated", nil, corev1.PodSpec{ReadinessGates: []corev1.PodReadinessGate{{ConditionType: gate}}, Containers: []corev1.Container{{Name: "main"}}})
		condition := func(p *corev1.Pod, typ corev1.PodConditionType) *corev1.PodCondition {
			for i := range p.Status.Conditions {
				if p.Status.Conditions[i].Type == typ {
					return &p.Status.Conditions[i]
				}
			}
			return nil
		}
		p := e.waitPod(t, "gated", "containers ready, the pod not", func(p *corev1.Pod) bool {
			cr, r := condition(p, corev1.ContainersReady), condition(p, corev1.PodReady)
			return running(p) && cr != nil && cr.Status == corev1.ConditionTrue && r != nil && r.Status == corev1.ConditionFalse && r.Reason == "ReadinessGatesNotReady"
		})
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: gate, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()})
		if _, err := e.client.CoreV1().Pods(e.ns).UpdateStatus(e.ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		e.waitPod(t, "gated", "Ready once the gate is True", ready)
		time.Sleep(resyncGrace)
		if p := e.pod("gated"); p == nil || !ready(p) || condition(p, gate) == nil {
			t.Errorf("after a resync the gate's condition or readiness went: %+v", p.Status.Conditions)
		}
	})

	t.Run("an ephemeral container joins a running pod once, in its target's PID namespace", func(t *testing.T) {
		e.runPod(t, "debugged", nil, corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Command: []string{"sleep", "4242"}}}})
		p := e.waitPod(t, "debugged", "Running", running)
		mainID := containerID(p, "main")
		p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{TargetContainerName: "main", EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			Name: "debugger", Image: containerd.BusyboxRef, ImagePullPolicy: corev1.PullIfNotPresent, Command: []string{"sh", "-c", "ps -o args | grep -c '^sleep 4242'"},
			TerminationMessagePolicy: corev1.TerminationMessageReadFile}}}
		if _, err := e.client.CoreV1().Pods(e.ns).UpdateEphemeralContainers(e.ctx, "debugged", p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		// It ran once in the target's PID namespace (it saw the target's
		// process), ended, and stays ended: ephemeral containers never
		// restart; the pod and its main container run on.
		e.waitPod(t, "debugged", "the ephemeral container ran and ended", func(p *corev1.Pod) bool {
			es := p.Status.EphemeralContainerStatuses
			return len(es) == 1 && es[0].Name == "debugger" && es[0].State.Terminated != nil
		})
		if code, body, err := e.kubeletGet(t, "/containerLogs/"+e.ns+"/debugged/debugger", &e.clientCert); err != nil || code != 200 || body != "1\n" {
			t.Errorf("the debugger did not see its target's process: %d %q %v", code, body, err)
		}
		time.Sleep(resyncGrace)
		p = e.pod("debugged")
		if es := p.Status.EphemeralContainerStatuses; len(es) != 1 || es[0].State.Terminated == nil || es[0].RestartCount != 0 || !running(p) || containerID(p, "main") != mainID {
			t.Errorf("after the ephemeral container ended: %+v", p.Status)
		}
	})

	t.Run("the kubelet API authenticates bearer tokens and authorizes with the API server's RBAC", func(t *testing.T) {
		e.runPod(t, "guarded", nil, corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Command: []string{"sh", "-c", "echo guarded-log; sleep 3600"}}}})
		e.waitPod(t, "guarded", "Running", running)
		token := func(sa string) string {
			if _, err := e.client.CoreV1().ServiceAccounts(e.ns).Create(e.ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			tr, err := e.client.CoreV1().ServiceAccounts(e.ns).CreateToken(e.ctx, sa, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return tr.Status.Token
		}
		viewer, nobody := token("viewer"), token("nobody")
		role := "kubelet-proxy-reader-" + e.ns
		if _, err := e.client.RbacV1().ClusterRoles().Create(e.ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: role},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes/proxy"}, Verbs: []string{"get"}}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.client.RbacV1().ClusterRoleBindings().Create(e.ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: e.ns, Name: "viewer"}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = e.client.RbacV1().ClusterRoleBindings().Delete(e.ctx, role, metav1.DeleteOptions{})
			_ = e.client.RbacV1().ClusterRoles().Delete(e.ctx, role, metav1.DeleteOptions{})
		})
		cfg := e.kubeletAPI(t)
		get := func(tok, method, path string) int {
			c := rest.CopyConfig(cfg)
			c.CertData, c.KeyData, c.BearerToken = nil, nil, tok
			tr, err := rest.TransportFor(c)
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest(method, cfg.Host+path, nil)
			resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		logs := "/containerLogs/" + e.ns + "/guarded/main"
		harness.WaitFor(t, "the viewer reads logs (RBAC: get nodes/proxy)", func() bool { return get(viewer, http.MethodGet, logs) == 200 })
		for _, tc := range []struct {
			who, tok, method, path string
			want                   int
		}{
			{"a service account without the role", nobody, http.MethodGet, logs, 403},
			{"the viewer creating an exec", viewer, http.MethodPost, "/exec/" + e.ns + "/guarded/main?command=true&output=1", 403},
			{"a forged token", "not-a-token", http.MethodGet, logs, 401},
			{"no credentials", "", http.MethodGet, logs, 401},
		} {
			if got := get(tc.tok, tc.method, tc.path); got != tc.want {
				t.Errorf("%s: %d, want %d", tc.who, got, tc.want)
			}
		}
		// The API server's own client certificate still works.
		if _, _, err := kubeletExec(t, cfg, e.ns, "guarded", "main", "", "true"); err != nil {
			t.Errorf("exec with the kubelet-client certificate: %v", err)
		}
	})
}

// resyncGrace outlasts a worker's periodic sync (10 s), so a check after
// it sees what that sync wrote.
const resyncGrace = 11 * time.Second
