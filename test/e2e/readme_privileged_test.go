package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/hivelet/hivelet/test/harness"
	"github.com/hivelet/hivelet/test/testnet"
)

// readmeCommands are commands of README's "Using it", run exactly as
// written there, with their default paths.
var readmeCommands = []string{
	"hivelet agent --manifests /etc/hivelet/manifests",
	"hivelet service list",
	"hivelet datapath status",
	"hivelet agent --cleanup",
	"hivelet agent --cleanup-kube-proxy",
	"hivelet cni install --pod-cidr 10.244.1.0/24,fd00:10:244:1::/64",
}

// readmeScript runs them as a fresh machine would: the scratch mount
// namespace has no bpffs at /sys/fs/bpf, /etc and /opt as overlays whose
// writes land in the scratch, an empty /run, and a cgroup2 mount whose
// root is the test's cgroup (a cgroup namespace), so the defaults
// (/sys/fs/bpf/hivelet, the cgroup2 root, /opt/cni/bin, /etc/cni/net.d)
// land in the scratch and nothing touches the machine.
const readmeScript = `set -eu
mount --make-rprivate /
umount -l /sys/fs/bpf 2>/dev/null || true
grep -q ' /sys/fs/bpf ' /proc/mounts && { echo "bpffs still mounted"; exit 1; }
for d in etc opt; do
  mkdir -p "$SCRATCH/$d/up" "$SCRATCH/$d/work"
  mount -t overlay scratch -o "lowerdir=/$d,upperdir=$SCRATCH/$d/up,workdir=$SCRATCH/$d/work" "/$d"
done
mount -t tmpfs scratch /run
cg2=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
umount -l "$cg2"; mount -t cgroup2 cgroup2 "$cg2"
ip link set lo up
mkdir -p /etc/hivelet/manifests
cp "$MANIFEST" /etc/hivelet/manifests/web.yaml
echo ">> $1"; $1 > "$LOG" 2>&1 &
agent=$!
for _ in $(seq 100); do $2 2>/dev/null | grep -q '10.96.0.10:80/TCP' && break; sleep 0.1; done
echo ">> $2"; $2
echo ">> $3"; $3
kill "$agent"; wait "$agent" || true
echo ">> $4"; $4
echo ">> $5"; $5
echo ">> $6"; $6
ls /opt/cni/bin/hivelet-cni /etc/cni/net.d/
grep -q '"10.244.1.0/24"' /etc/cni/net.d/05-hivelet.conflist
`

// TestPrivilegedReadmeCommands runs README's commands as written, with
// their default paths, in scratch namespaces of a fresh machine's shape
// (bpffs not mounted beforehand).
func TestPrivilegedReadmeCommands(t *testing.T) {
	testnet.RequireRoot(t)
	_, here, _, _ := runtime.Caller(0)
	readme, err := os.ReadFile(filepath.Join(filepath.Dir(here), "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range readmeCommands {
		if !strings.Contains(string(readme), "\n"+c+" ") && !strings.Contains(string(readme), "\n"+c+"\n") {
			t.Errorf("README no longer has %q as a command line: update readmeCommands", c)
		}
	}
	bin := filepath.Dir(hiveletBin)
	if _, err := harness.GoBuild(bin, "hivelet-cni", "github.com/hivelet/hivelet/cmd/hivelet-cni"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	manifest := filepath.Join(dir, "web.yaml")
	writeFile(t, manifest, manifests("10.96.0.10", "10.244.1.5"))
	cg := testnet.NewCgroup(t)
	// The shell joins the test's cgroup first: the cgroup namespace made
	// next is rooted there.
	args := append([]string{"-c", `echo $$ > "$CG/cgroup.procs" && exec unshare --mount --net --cgroup --fork sh -c "$SCRIPT" sh "$@"`, "sh"},
		readmeCommands...)
	cmd := exec.Command("sh", args...)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "CG="+cg, "SCRIPT="+readmeScript,
		"MANIFEST="+manifest, "SCRATCH="+dir, "LOG="+filepath.Join(dir, "agent.log"))
	out, err := cmd.CombinedOutput()
	log, _ := os.ReadFile(filepath.Join(dir, "agent.log"))
	if err != nil {
		t.Fatalf("%v\n%s\nagent log:\n%s", err, out, log)
	}
	t.Logf("%s", out)
	for _, want := range []string{"10.96.0.10:80/TCP", "10.244.1.5:8080/TCP", "Removed hivelet programs"} {
		if !strings.Contains(string(out)+string(log), want) {
			t.Errorf("no %q in the output:\n%s\nagent log:\n%s", want, out, log)
		}
	}
	if !strings.Contains(string(log), "Socket LB attached") || !strings.Contains(string(log), "bpffs=/sys/fs/bpf/hivelet") {
		t.Errorf("the agent did not attach with its defaults:\n%s", log)
	}
}
