package cluster

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// cgroup2Root is where this machine mounts cgroup v2: the DaemonSet sees
// it below the host's /sys/fs/cgroup, mounted at /run/hivelet/cgroup.
func cgroup2Root(t *testing.T) string {
	f, err := os.Open("/proc/mounts")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) > 2 && fs[2] == "cgroup2" {
			return fs[1]
		}
	}
	t.Fatal("no cgroup2 mount")
	return ""
}

// deployObjects reads deploy/hivelet.yaml as generic objects.
func deployObjects(t *testing.T) []map[string]any {
	raw, err := os.ReadFile(filepath.Join(repo, "deploy", "hivelet.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	var out []map[string]any
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var o map[string]any
		if err := yaml.Unmarshal(doc, &o); err != nil {
			t.Fatal(err)
		}
		if o != nil {
			out = append(out, o)
		}
	}
}

// nodeDaemonSets turns the DaemonSet of deploy/hivelet.yaml into one per
// node: this machine's nodes are network namespaces sharing one bpffs
// and one cgroup tree, so each agent gets its node's pin directory and
// cgroup, which a real node's agent finds at the manifest's defaults.
// The CNI init container goes too: hack/cluster.sh installs each node's
// plugin in a directory of its own, not the host's /opt/cni/bin (the
// deploy test runs `cni install --from-node` itself).
func nodeDaemonSets(t *testing.T, apiServer string, nodeNames []string) string {
	cgRoot := strings.TrimPrefix(cgroup2Root(t), "/sys/fs/cgroup")
	var docs []string
	add := func(o map[string]any) {
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	for _, o := range deployObjects(t) {
		switch o["kind"] {
		case "ConfigMap":
			o["data"].(map[string]any)["k8s-api-server"] = apiServer
			add(o)
		case "DaemonSet":
			for _, node := range nodeNames {
				i := strings.TrimPrefix(node, "hivelet-node")
				raw, _ := json.Marshal(o)
				var ds map[string]any
				_ = json.Unmarshal(raw, &ds)
				ds["metadata"].(map[string]any)["name"] = "hivelet-" + node
				spec := ds["spec"].(map[string]any)
				labels := map[string]any{"app.kubernetes.io/name": "hivelet", "hivelet.test/node": node}
				spec["selector"] = map[string]any{"matchLabels": labels}
				tmpl := spec["template"].(map[string]any)
				tmpl["metadata"] = map[string]any{"labels": labels}
				pod := tmpl["spec"].(map[string]any)
				pod["nodeSelector"] = map[string]any{"kubernetes.io/hostname": node}
				delete(pod, "initContainers")
				var vols []any
				for _, v := range pod["volumes"].([]any) {
					if n := v.(map[string]any)["name"]; n != "cni-bin" && n != "cni-conf" {
						vols = append(vols, v)
					}
				}
				pod["volumes"] = vols
				c := pod["containers"].([]any)[0].(map[string]any)
				c["args"] = append(c["args"].([]any), "--bpffs", "/sys/fs/bpf/hlc-node"+i,
					"--cgroup2", "/run/hivelet/cgroup"+cgRoot+"/hlc-node"+i, "--devices", "eth0", "--pod-routes", "native")
				add(ds)
			}
		default:
			add(o)
		}
	}
	return strings.Join(docs, "\n---\n")
}

// TestDaemonSet runs the agent as users deploy it: the image of `make
// image` imported into every node, deploy/hivelet.yaml applied (one
// DaemonSet per node, see nodeDaemonSets), the nodes' own agent processes
// stopped. A Deployment behind a NodePort Service is then reached from a
// pod on every node and from outside the nodes through each NodePort.
func TestDaemonSet(t *testing.T) {
	cluster := filepath.Join(repo, "hack", "cluster.sh")
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	archive := filepath.Join(t.TempDir(), "hivelet-image.tar")
	run("go", "run", "./hack/image", "--bin", "bin", "--out", archive)
	run(cluster, "import", archive)

	apiServer := "https://" + strings.TrimSpace(must(t, "", "get", "endpoints", "kubernetes", "-o", "jsonpath={.subsets[0].addresses[0].ip}:{.subsets[0].ports[0].port}"))
	nodeNames := nodes(t)
	manifest := nodeDaemonSets(t, apiServer, nodeNames)
	run(cluster, "agents", "off")
	t.Cleanup(func() {
		_, _, _ = kubectl(t, manifest, "delete", "-f", "-", "--wait=true", "--timeout=60s")
		// The nodes' processes adopt the pins the DaemonSet's agents left.
		if out, err := exec.Command(cluster, "agents", "on").CombinedOutput(); err != nil {
			t.Errorf("agents on: %v\n%s", err, out)
		}
	})
	must(t, manifest, "apply", "-f", "-")
	for _, node := range nodeNames {
		if _, errs, err := kubectl(t, "", "-n", "kube-system", "rollout", "status", "daemonset/hivelet-"+node, "--timeout=120s"); err != nil {
			desc, _, _ := kubectl(t, "", "-n", "kube-system", "get", "pods", "-l", "hivelet.test/node="+node, "-o", "jsonpath={.items[*].status.containerStatuses}")
			logs, _, _ := kubectl(t, "", "-n", "kube-system", "logs", "-l", "hivelet.test/node="+node, "--tail=20")
			t.Fatalf("DaemonSet of %s not ready: %v %s\n%s\nagent log:\n%s", node, err, errs, desc, logs)
		}
		logs := must(t, "", "-n", "kube-system", "logs", "-l", "hivelet.test/node="+node, "--tail=-1")
		i := strings.TrimPrefix(node, "hivelet-node")
		if !strings.Contains(logs, "Socket LB attached") || !strings.Contains(logs, "hlc-node"+i) {
			t.Errorf("%s: the DaemonSet's agent did not attach to the node's cgroup:\n%s", node, logs)
		}
	}

	ns := namespace(t)
	must(t, fmt.Sprintf(`{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
  "spec": {"replicas": %d, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
    "spec": {"terminationGracePeriodSeconds": 1, "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
      "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}],
      "containers": [{"name": "httpd", "image": %q, "command": ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"],
        "ports": [{"containerPort": 8080}], "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}}]}}}}`,
		2*len(nodeNames), busybox), "-n", ns, "apply", "-f", "-")
	must(t, `{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
  "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}`, "-n", ns, "apply", "-f", "-")
	if _, errs, err := kubectl(t, "", "-n", ns, "rollout", "status", "deployment/web", "--timeout=120s"); err != nil {
		t.Fatalf("Deployment web: %v %s", err, errs)
	}
	backends := strings.Fields(must(t, "", "-n", ns, "get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}"))
	clusterIP := strings.TrimSpace(must(t, "", "-n", ns, "get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"))
	nodePort := strings.TrimSpace(must(t, "", "-n", ns, "get", "service", "web", "-o", "jsonpath={.spec.ports[0].nodePort}"))

	// seen asks n times and returns the backends that answered.
	seen := func(n int, ask func() string) map[string]int {
		got := map[string]int{}
		for range n {
			got[strings.TrimSpace(ask())]++
		}
		return got
	}
	check := func(what string, got map[string]int) {
		t.Helper()
		for b := range got {
			if !strings.HasPrefix(b, "web-") {
				t.Errorf("%s: a request got %q (all answers: %v)", what, b, got)
			}
		}
		if len(got) < 2 {
			t.Errorf("%s: answers from %v, want them spread over the %d backends %v", what, got, len(backends), backends)
		}
	}
	for _, node := range nodeNames {
		client := "client-" + node
		pod(t, ns, podJSON(client, node, false, "sleep 3600", 0))
		check("from a pod on "+node, seen(20, func() string {
			out, _, _ := kubectl(t, "", "-n", ns, "exec", client, "--", "timeout", "5", "wget", "-qO-", "http://"+clusterIP+"/")
			return out
		}))
		ip := strings.TrimSpace(must(t, "", "get", "node", node, "-o", `jsonpath={.status.addresses[?(@.type=="InternalIP")].address}`))
		check("from outside through "+ip+":"+nodePort, seen(20, func() string {
			out, _ := exec.Command(cluster, "exec-hub", "curl", "-s", "--max-time", "5", "http://"+ip+":"+nodePort+"/").Output()
			return string(out)
		}))
	}
}
