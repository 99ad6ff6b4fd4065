package pods

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const etcHosts = "/etc/hosts"

// podHostname is the pod's hostname and, with a subdomain and a cluster
// domain, its fully qualified name: spec.hostname, else the pod's name
// cut to 63 characters without a trailing '-' or '.', as upstream.
func (m *Manager) podHostname(pod *corev1.Pod) (host, fqdn string) {
	host = pod.Spec.Hostname
	if host == "" {
		host = pod.Name
		if len(host) > 63 {
			host = strings.TrimRight(host[:63], "-.")
		}
	}
	if pod.Spec.Subdomain != "" && m.cfg.ClusterDomain != "" {
		fqdn = host + "." + pod.Spec.Subdomain + "." + pod.Namespace + ".svc." + m.cfg.ClusterDomain
	}
	return host, fqdn
}

// sandboxHostname is what the sandbox's UTS namespace is named: the FQDN
// with setHostnameAsFQDN (at most 64 characters, the kernel's limit).
func (m *Manager) sandboxHostname(pod *corev1.Pod) (string, error) {
	host, fqdn := m.podHostname(pod)
	if pod.Spec.SetHostnameAsFQDN == nil || !*pod.Spec.SetHostnameAsFQDN || fqdn == "" {
		return host, nil
	}
	if len(fqdn) > 64 {
		return "", fmt.Errorf("failed to construct FQDN from pod hostname and cluster domain, FQDN %s is too long (64 characters is the max, %d characters requested)", fqdn, len(fqdn))
	}
	return fqdn, nil
}

// hostsMount is the pod's managed /etc/hosts for container c: localhost,
// the pod's own addresses and names, and its hostAliases, the upstream
// kubelet's file. A pod on the node's network gets the node's file with
// its aliases added. None before the pod has an address, or when the
// container mounts its own /etc/hosts.
func (m *Manager) hostsMount(pod *corev1.Pod, c *corev1.Container, podIPs []string) (*runtimeapi.Mount, error) {
	if len(podIPs) == 0 {
		return nil, nil
	}
	for _, vm := range c.VolumeMounts {
		if filepath.Clean(vm.MountPath) == etcHosts {
			return nil, nil
		}
	}
	var buf bytes.Buffer
	if pod.Spec.HostNetwork {
		node, err := os.ReadFile(etcHosts)
		if err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("read the node's %s: %w", etcHosts, err)
		}
		buf.Write(node)
		if len(node) > 0 && node[len(node)-1] != '\n' {
			buf.WriteByte('\n')
		}
	} else {
		buf.WriteString("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
			"fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
		host, fqdn := m.podHostname(pod)
		for _, ip := range podIPs {
			if fqdn != "" {
				fmt.Fprintf(&buf, "%s\t%s\t%s\n", ip, fqdn, host)
			} else {
				fmt.Fprintf(&buf, "%s\t%s\n", ip, host)
			}
		}
	}
	if len(pod.Spec.HostAliases) > 0 {
		buf.WriteString("\n# Entries added by HostAliases.\n")
		for _, a := range pod.Spec.HostAliases {
			fmt.Fprintf(&buf, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
		}
	}
	path := filepath.Join(m.podDir(string(pod.UID)), "etc-hosts")
	if cur := readLimited(path, int64(buf.Len())+1); cur == buf.String() {
		// Every container of the pod shares the file: written once.
		return &runtimeapi.Mount{ContainerPath: etcHosts, HostPath: path}, nil
	}
	if err := writeFileAtomic(path, buf.Bytes(), 0o644); err != nil {
		return nil, fmt.Errorf("write the pod's hosts file: %w", err)
	}
	return &runtimeapi.Mount{ContainerPath: etcHosts, HostPath: path}, nil
}

// writeFileAtomic replaces path (in the kubelet's own directory) by a
// rename, so a running container never reads half a file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), mode)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
	}
	return err
}
