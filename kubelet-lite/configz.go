package kubeletlite

import (
	"net"
	"strconv"
)

// configz is the effective configuration as the upstream kubelet's
// /configz shows it: a KubeletConfiguration under "kubeletconfig", with
// the fields kubelet-lite has.
func configz(cfg Config) map[string]any {
	dns := make([]string, len(cfg.ClusterDNS))
	for i, ip := range cfg.ClusterDNS {
		dns[i] = ip.String()
	}
	kc := map[string]any{
		"kind": "KubeletConfiguration", "apiVersion": "kubelet.config.k8s.io/v1beta1",
		"staticPodPath": cfg.PodManifestPath, "maxPods": cfg.MaxPods, "cgroupRoot": cfg.CgroupRoot, "cgroupDriver": cfg.CgroupDriver, "rotateCertificates": cfg.RotateCertificates,
		"podCIDR": cfg.PodCIDR, "containerRuntimeEndpoint": cfg.RuntimeEndpoint, "clusterDNS": dns, "clusterDomain": cfg.ClusterDomain,
		"resolvConf": cfg.ResolvConf, "seccompDefault": cfg.SeccompDefault, "allowedUnsafeSysctls": cfg.AllowedUnsafeSysctls,
		"podLogsDir": cfg.PodLogsDir, "containerLogMaxSize": cfg.ContainerLogMaxSize, "containerLogMaxFiles": cfg.ContainerLogMaxFiles,
		"address": cfg.Address, "port": cfg.Port, "tlsCertFile": cfg.TLSCertFile, "tlsPrivateKeyFile": cfg.TLSPrivateKeyFile,
		"authentication": map[string]any{
			"x509":      map[string]any{"clientCAFile": cfg.ClientCAFile},
			"webhook":   map[string]any{"enabled": cfg.AuthenticationTokenWebhook, "cacheTTL": tokenCacheTTL.String()},
			"anonymous": map[string]any{"enabled": cfg.AnonymousAuth},
		},
		"authorization": map[string]any{"mode": authzMode(cfg), "webhook": map[string]any{
			"cacheAuthorizedTTL": allowedCacheTTL.String(), "cacheUnauthorizedTTL": disallowedCacheTTL.String()}},
	}
	if host, port, err := net.SplitHostPort(cfg.HealthzAddr); err == nil {
		kc["healthzBindAddress"] = host
		if p, err := strconv.Atoi(port); err == nil {
			kc["healthzPort"] = p
		}
	}
	return map[string]any{"kubeletconfig": kc}
}

func authzMode(cfg Config) string {
	if cfg.AuthorizationMode == "" {
		return AuthzAlwaysAllow
	}
	return cfg.AuthorizationMode
}
