package kubeletlite

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hivelet/hivelet/kubelet-lite/imagegc"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestKubeadmDefaultConfig: kubeadm's default file loads as it is, its
// values honoured, the systemd cgroup driver and certificate rotation
// included.
func TestKubeadmDefaultConfig(t *testing.T) {
	raw, err := os.ReadFile("testdata/kubeadm-kubelet-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := Config{HealthzAddr: "0.0.0.0:1"}
	if err := c.LoadFile(writeConfig(t, string(raw))); err != nil {
		t.Fatal(err)
	}
	if c.PodManifestPath != "/etc/kubernetes/manifests" || c.ClientCAFile != "/etc/kubernetes/pki/ca.crt" || c.ClusterDomain != "cluster.local" ||
		len(c.ClusterDNS) != 1 || c.ClusterDNS[0] != netip.MustParseAddr("10.96.0.10") || c.ResolvConf != "/run/systemd/resolve/resolv.conf" ||
		c.HealthzAddr != "127.0.0.1:10248" || !c.AuthenticationTokenWebhook || c.AuthorizationMode != AuthzWebhook ||
		c.CgroupDriver != "systemd" || !c.RotateCertificates {
		t.Errorf("values not honoured: %+v", c)
	}
	// A flag wins over the file.
	c = Config{CgroupDriver: "cgroupfs"}
	c.FlagsGiven("cgroup-driver")
	if err := c.LoadFile(writeConfig(t, string(raw))); err != nil || c.CgroupDriver != "cgroupfs" {
		t.Errorf("--cgroup-driver cgroupfs with the file's systemd: %q (%v)", c.CgroupDriver, err)
	}
}

func TestConfigFileStrict(t *testing.T) {
	for body, want := range map[string]string{
		"kind: KubeletConfiguration\nserializeImagePulls: false\n":             `unknown field "serializeImagePulls"`,
		"kind: KubeletConfiguration\nsyncFrequency: 1m\n":                      "syncFrequency: 1m0s is not supported",
		"kind: KubeletConfiguration\nevictionHard: {memory.available: lots}\n": "evictionHard",
		"kind: KubeProxyConfiguration\n":                                       `kind "KubeProxyConfiguration"`,
		"kind: KubeletConfiguration\nclusterDNS: [not-an-ip]\n":                "clusterDNS",
	} {
		var c Config
		if err := c.LoadFile(writeConfig(t, body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error naming %s", body, err, want)
		}
	}
	// Flags given on the command line win over the file.
	c := Config{PodManifestPath: "/flag", ClusterDomain: ""}
	c.FlagsGiven("pod-manifest-path", "cluster-domain")
	if err := c.LoadFile(writeConfig(t, "staticPodPath: /file\nclusterDomain: file.local\nmaxPods: 42\n")); err != nil {
		t.Fatal(err)
	}
	if c.PodManifestPath != "/flag" || c.ClusterDomain != "" || c.MaxPods != 42 {
		t.Errorf("flags vs file: %+v", c)
	}
	c = Config{}
	if err := c.LoadFile(writeConfig(t, "evictionHard: {memory.available: 1Gi}\nsystemReserved: {cpu: 500m}\n")); err != nil ||
		len(c.EvictionHard) != 1 || c.EvictionHard[0].String() != "memory.available<1Gi" || c.SystemReserved["cpu"] != "500m" {
		t.Errorf("evictionHard, systemReserved: %v, %v %v", err, c.EvictionHard, c.SystemReserved)
	}
	c = Config{ImageGC: imagegc.DefaultPolicy}
	if err := c.LoadFile(writeConfig(t, "imageGCHighThresholdPercent: 90\nimageMaximumGCAge: 1h\nimageMinimumGCAge: 0s\n")); err != nil ||
		c.ImageGC != (imagegc.Policy{HighThresholdPercent: 90, LowThresholdPercent: 80, MinAge: 2 * time.Minute, MaxAge: time.Hour}) {
		t.Errorf("image GC fields: %v, %+v", err, c.ImageGC)
	}
	c = Config{}
	if err := c.LoadFile(writeConfig(t, "authentication: {anonymous: {enabled: true}}\n")); err != nil || !c.AnonymousAuth {
		t.Errorf("authentication.anonymous.enabled: %v, AnonymousAuth=%v", err, c.AnonymousAuth)
	}
}

func TestConfigzShowsWhatWasLoaded(t *testing.T) {
	raw, err := os.ReadFile("testdata/kubeadm-kubelet-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := Config{HealthzAddr: "127.0.0.1:10248", Port: 10250}
	if err := c.LoadFile(writeConfig(t, string(raw))); err != nil {
		t.Fatal(err)
	}
	kc := configz(c)["kubeletconfig"].(map[string]any)
	if kc["staticPodPath"] != "/etc/kubernetes/manifests" || kc["clusterDomain"] != "cluster.local" || kc["healthzPort"] != 10248 ||
		kc["authorization"].(map[string]any)["mode"] != AuthzWebhook || kc["cgroupDriver"] != "systemd" || kc["rotateCertificates"] != true {
		t.Errorf("configz %v", kc)
	}
}
