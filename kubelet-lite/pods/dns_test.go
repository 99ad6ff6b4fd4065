package pods

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestPodDNS(t *testing.T) {
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(rc, []byte("# node\nnameserver 192.0.2.53\nsearch corp.example\noptions edns0 ndots:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	host, err := readResolvConf(rc)
	if err != nil {
		t.Fatal(err)
	}
	m := &Manager{cfg: Config{ClusterDNS: []netip.Addr{netip.MustParseAddr("10.96.0.10")}, ClusterDomain: "cluster.local"}, hostDNS: host}
	pod := func(policy corev1.DNSPolicy, hostNet bool, cfg *corev1.PodDNSConfig) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "team"}, Spec: corev1.PodSpec{DNSPolicy: policy, HostNetwork: hostNet, DNSConfig: cfg}}
	}
	cluster := []string{"team.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"}
	for name, tc := range map[string]struct {
		pod                        *corev1.Pod
		servers, searches, options []string
	}{
		"ClusterFirst":                       {pod("", false, nil), []string{"10.96.0.10"}, cluster, []string{"ndots:5"}},
		"ClusterFirst on the host network":   {pod(corev1.DNSClusterFirst, true, nil), []string{"192.0.2.53"}, []string{"corp.example"}, []string{"edns0", "ndots:2"}},
		"ClusterFirstWithHostNet":            {pod(corev1.DNSClusterFirstWithHostNet, true, nil), []string{"10.96.0.10"}, cluster, []string{"ndots:5"}},
		"Default":                            {pod(corev1.DNSDefault, false, nil), []string{"192.0.2.53"}, []string{"corp.example"}, []string{"edns0", "ndots:2"}},
		"None with dnsConfig":                {pod(corev1.DNSNone, false, &corev1.PodDNSConfig{Nameservers: []string{"1.1.1.1"}, Searches: []string{"a.b"}, Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("1")}}}), []string{"1.1.1.1"}, []string{"a.b"}, []string{"ndots:1"}},
		"ClusterFirst merged with dnsConfig": {pod("", false, &corev1.PodDNSConfig{Nameservers: []string{"10.96.0.10", "9.9.9.9"}, Searches: []string{"extra.example"}, Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("2")}, {Name: "rotate"}}}), []string{"10.96.0.10", "9.9.9.9"}, append(slices.Clone(cluster), "extra.example"), []string{"ndots:2", "rotate"}},
	} {
		got, warn := m.podDNS(tc.pod)
		if warn != "" || !slices.Equal(got.Servers, tc.servers) || !slices.Equal(got.Searches, tc.searches) || !slices.Equal(got.Options, tc.options) {
			t.Errorf("%s: %+v (%s)", name, got, warn)
		}
	}
	m.cfg.ClusterDNS = nil
	if got, warn := m.podDNS(pod("", false, nil)); !strings.Contains(warn, "Falling back") || !slices.Equal(got.Servers, []string{"192.0.2.53"}) {
		t.Errorf("ClusterFirst without clusterDNS: %+v %q", got, warn)
	}
	long := make([]string, 40)
	for i := range long {
		long[i] = strings.Repeat("d", 60) + ".example"
	}
	if got := trimSearches(long); len(got) > maxDNSSearches || len(strings.Join(got, " ")) > maxDNSSearchChars {
		t.Errorf("searches not trimmed: %d", len(got))
	}
}

func TestHostsFileAndHostname(t *testing.T) {
	m := &Manager{cfg: Config{RootDir: t.TempDir(), ClusterDomain: "cluster.local"}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "team", UID: "u1"}, Spec: corev1.PodSpec{
		Hostname: "web-0", Subdomain: "web", SetHostnameAsFQDN: ptr.To(true),
		HostAliases: []corev1.HostAlias{{IP: "192.0.2.7", Hostnames: []string{"db", "db.local"}}},
		Containers:  []corev1.Container{{Name: "c"}}}}
	if h, err := m.sandboxHostname(pod); err != nil || h != "web-0.web.team.svc.cluster.local" {
		t.Errorf("FQDN hostname %q %v", h, err)
	}
	mnt, err := m.hostsMount(pod, &pod.Spec.Containers[0], []string{"10.244.0.5"})
	if err != nil || mnt == nil || mnt.ContainerPath != "/etc/hosts" {
		t.Fatalf("hosts mount %+v %v", mnt, err)
	}
	b, _ := os.ReadFile(mnt.HostPath)
	for _, want := range []string{"127.0.0.1\tlocalhost\n", "10.244.0.5\tweb-0.web.team.svc.cluster.local\tweb-0\n", "192.0.2.7\tdb\tdb.local\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("hosts file lacks %q:\n%s", want, b)
		}
	}
	if mnt, _ := m.hostsMount(pod, &pod.Spec.Containers[0], nil); mnt != nil {
		t.Error("a hosts file before the pod has an address")
	}
	own := &corev1.Container{Name: "c", VolumeMounts: []corev1.VolumeMount{{Name: "v", MountPath: "/etc/hosts"}}}
	if mnt, _ := m.hostsMount(pod, own, []string{"10.244.0.5"}); mnt != nil {
		t.Error("the managed hosts file over the container's own")
	}
	pod.Spec.Subdomain = strings.Repeat("s", 50)
	if _, err := m.sandboxHostname(pod); err == nil {
		t.Error("an FQDN over 64 characters was accepted")
	}
}

func TestServiceVars(t *testing.T) {
	var env envList
	serviceVars(&env, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "redis-primary"}, Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.11",
		Ports: []corev1.ServicePort{{Port: 6379}, {Name: "metrics", Port: 9121, Protocol: corev1.ProtocolUDP}}}})
	serviceVars(&env, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "headless"}, Spec: corev1.ServiceSpec{ClusterIP: "None", Ports: []corev1.ServicePort{{Port: 80}}}})
	want := map[string]string{
		"REDIS_PRIMARY_SERVICE_HOST":         "10.0.0.11",
		"REDIS_PRIMARY_SERVICE_PORT":         "6379",
		"REDIS_PRIMARY_SERVICE_PORT_METRICS": "9121",
		"REDIS_PRIMARY_PORT":                 "tcp://10.0.0.11:6379",
		"REDIS_PRIMARY_PORT_6379_TCP":        "tcp://10.0.0.11:6379",
		"REDIS_PRIMARY_PORT_6379_TCP_PROTO":  "tcp",
		"REDIS_PRIMARY_PORT_6379_TCP_PORT":   "6379",
		"REDIS_PRIMARY_PORT_6379_TCP_ADDR":   "10.0.0.11",
		"REDIS_PRIMARY_PORT_9121_UDP":        "udp://10.0.0.11:9121",
		"REDIS_PRIMARY_PORT_9121_UDP_PROTO":  "udp",
		"REDIS_PRIMARY_PORT_9121_UDP_PORT":   "9121",
		"REDIS_PRIMARY_PORT_9121_UDP_ADDR":   "10.0.0.11",
	}
	if len(env.vals) != len(want) {
		t.Errorf("%d variables, want %d: %v", len(env.vals), len(want), env.vals)
	}
	for k, v := range want {
		if env.vals[k] != v {
			t.Errorf("%s=%q, want %q", k, env.vals[k], v)
		}
	}
}
