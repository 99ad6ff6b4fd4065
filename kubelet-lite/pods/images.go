package pods

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// imageRefRE is the grammar of an image reference (distribution's
// reference package): [domain[:port]/]path[:tag][@digest], the path in
// lower case.
var imageRefRE = regexp.MustCompile(`^` +
	`(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?/)?` +
	`[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*` +
	`(?::[\w][\w.-]{0,127})?` +
	`(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$`)

// checkImageRef refuses what no registry could serve, before asking one
// (the upstream kubelet's InvalidImageName).
func checkImageRef(ref string) error {
	if len(ref) > 255+128 || !imageRefRE.MatchString(ref) {
		return fmt.Errorf("couldn't parse image name %q: want [registry[:port]/]lower/case/path[:tag][@sha256:digest]", ref)
	}
	return nil
}

// registryOf is the registry host of an image reference ("docker.io" for
// short names).
func registryOf(image string) string {
	first, _, found := strings.Cut(image, "/")
	if !found || !strings.ContainsAny(first, ".:") && first != "localhost" {
		return "docker.io"
	}
	return first
}

// pullAuths lists the credentials to try for image, from the pod's
// imagePullSecrets (kubernetes.io/dockerconfigjson), then anonymous.
func (m *Manager) pullAuths(ctx context.Context, pod *corev1.Pod, image string) ([]*runtimeapi.AuthConfig, error) {
	var out []*runtimeapi.AuthConfig
	if m.client != nil {
		reg := registryOf(image)
		for _, ref := range pod.Spec.ImagePullSecrets {
			s, err := m.client.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
			if err != nil {
				m.log.Warn("imagePullSecret unreadable; skipping it", "pod", pod.Namespace+"/"+pod.Name, "secret", ref.Name, "error", err)
				continue
			}
			auths, err := dockerAuths(s)
			if err != nil {
				return nil, fmt.Errorf("imagePullSecret %s: %w", ref.Name, err)
			}
			for host, a := range auths {
				h := strings.TrimPrefix(strings.TrimPrefix(host, "https://"), "http://")
				if strings.TrimSuffix(h, "/") == reg || strings.HasPrefix(h, reg+"/") {
					// containerd hands credentials only to the host of the
					// URL in ServerAddress, and a bare "host:port" does
					// not parse as one. Docker Hub is served from another
					// host than its name: no address, no mismatch.
					a.ServerAddress = "https://" + reg
					if reg == "docker.io" {
						a.ServerAddress = ""
					}
					out = append(out, a)
				}
			}
		}
	}
	return append(out, nil), nil
}

func dockerAuths(s *corev1.Secret) (map[string]*runtimeapi.AuthConfig, error) {
	raw, ok := s.Data[corev1.DockerConfigJsonKey]
	if !ok {
		return nil, fmt.Errorf("no %s key (want a %s Secret)", corev1.DockerConfigJsonKey, corev1.SecretTypeDockerConfigJson)
	}
	var cfg struct {
		Auths map[string]struct {
			Username, Password, Auth, IdentityToken string
		} `json:"auths"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("parse %s: %w", corev1.DockerConfigJsonKey, err)
	}
	out := map[string]*runtimeapi.AuthConfig{}
	for host, a := range cfg.Auths {
		user, pass := a.Username, a.Password
		if a.Auth != "" {
			if dec, err := base64.StdEncoding.DecodeString(a.Auth); err == nil {
				user, pass, _ = strings.Cut(string(dec), ":")
			}
		}
		out[host] = &runtimeapi.AuthConfig{Username: user, Password: pass, ServerAddress: host, IdentityToken: a.IdentityToken}
	}
	return out, nil
}
