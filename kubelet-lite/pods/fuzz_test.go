package pods

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// FuzzPodSpec feeds arbitrary pods through admission and the spec → CRI
// conversion: whatever a manifest or the API server hands the kubelet,
// it must answer with a config or an error, never a panic. `make test`
// runs it for a short fixed time; testdata/fuzz holds the corpus.
func FuzzPodSpec(f *testing.F) {
	for _, seed := range []string{
		`{"metadata":{"name":"p","namespace":"ns","uid":"u"},"spec":{"containers":[{"name":"c","image":"i"}]}}`,
		`{"metadata":{"name":"p","namespace":"ns","uid":"u"},"spec":{"containers":[{"name":"c","image":"i","env":[{"name":"X","valueFrom":{"resourceFieldRef":{"resource":"limits.memory","divisor":"1E"}}}]}]}}`,
		`{"metadata":{"name":"p","namespace":"ns","uid":"u"},"spec":{"hostNetwork":true,"securityContext":{"runAsUser":1000,"sysctls":[{"name":"net.core.somaxconn","value":"1"}]},"containers":[{"name":"c","image":"i","securityContext":{"capabilities":{"drop":["ALL"]},"readOnlyRootFilesystem":true,"seccompProfile":{"type":"Localhost","localhostProfile":"../x"}}}]}}`,
		`{"metadata":{"name":"p","namespace":"ns","uid":"u","labels":{"a":"b"}},"spec":{"volumes":[{"name":"d","downwardAPI":{"items":[{"path":"cpu","resourceFieldRef":{"containerName":"c","resource":"limits.cpu","divisor":"1m"}},{"path":"l","fieldRef":{"fieldPath":"metadata.labels['a']"}}]}}],"containers":[{"name":"c","image":"i","volumeMounts":[{"name":"d","mountPath":"/d","subPathExpr":"$(POD)/x"}]}]}}`,
	} {
		f.Add([]byte(seed))
	}
	m := &Manager{cfg: Config{NodeName: "n", NodeIPs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}, RootDir: f.TempDir(), CgroupRoot: "/",
		Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("1Gi")}},
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	f.Fuzz(func(t *testing.T, data []byte) {
		var pod corev1.Pod
		if json.Unmarshal(data, &pod) != nil {
			return
		}
		_ = QOSClass(&pod)
		if _, err := m.admit(&pod); err != nil {
			return // the worker converts only admitted pods
		}
		_, _ = m.SandboxConfig(&pod, 0)
		_, _ = m.podDNS(&pod)
		for _, v := range pod.Spec.Volumes {
			if v.DownwardAPI != nil {
				_, _ = m.downwardFiles(&pod, v.DownwardAPI.Items, defaultFileMode)
			}
		}
		for _, c := range allContainers(&pod) {
			_, _ = m.ContainerConfig(context.Background(), &pod, &c, 0, []string{"10.0.0.1"}, map[string]podVolume{})
			_ = checkRunAsNonRoot(&pod, &c, nil, "")
		}
	})
}
