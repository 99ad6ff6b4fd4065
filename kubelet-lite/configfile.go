package kubeletlite

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/hivelet/hivelet/kubelet-lite/eviction"
)

// fileConfig is a KubeletConfiguration (kubelet.config.k8s.io/v1beta1)
// as kubelet-lite reads it: every field it knows is here, decoded
// strictly. A field is either honoured or, when set to something
// kubelet-lite does not do, refused by name (checkUnsupported): a
// setting silently ignored could leave a node less safe than its owner
// thinks.
type fileConfig struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`

	// Honoured (the webhook cache TTLs are kubelet-lite's fixed ones).
	StaticPodPath            string   `json:"staticPodPath"`
	MaxPods                  int      `json:"maxPods"`
	CgroupRoot               string   `json:"cgroupRoot"`
	PodCIDR                  string   `json:"podCIDR"`
	ContainerRuntimeEndpoint string   `json:"containerRuntimeEndpoint"`
	SeccompDefault           bool     `json:"seccompDefault"`
	AllowedUnsafeSysctls     []string `json:"allowedUnsafeSysctls"`
	ClusterDNS               []string `json:"clusterDNS"`
	ClusterDomain            string   `json:"clusterDomain"`
	ResolvConf               *string  `json:"resolvConf"`
	PodLogsDir               string   `json:"podLogsDir"`
	ContainerLogMaxSize      string   `json:"containerLogMaxSize"`
	ContainerLogMaxFiles     int      `json:"containerLogMaxFiles"`
	HealthzBindAddress       string   `json:"healthzBindAddress"`
	HealthzPort              *int     `json:"healthzPort"`
	Address                  string   `json:"address"`
	Port                     int      `json:"port"`
	FailCgroupV1             *bool    `json:"failCgroupV1"`
	RotateCertificates       bool     `json:"rotateCertificates"`
	CgroupDriver             string   `json:"cgroupDriver"`
	EnforceNodeAlloc         []string `json:"enforceNodeAllocatable"`
	// Each replaces the flag's whole value, defaults included, as
	// upstream's does without mergeDefaultEvictionSettings.
	EvictionHard map[string]string `json:"evictionHard"`
	EvictionSoft map[string]string `json:"evictionSoft"`
	// Durations by signal: {memory.available: 1m30s}.
	EvictionSoftGracePeriod   map[string]string `json:"evictionSoftGracePeriod"`
	EvictionMaxPodGracePeriod int               `json:"evictionMaxPodGracePeriod"`
	EvictionMinimumReclaim    map[string]string `json:"evictionMinimumReclaim"`
	ImageGCHighThreshold      *int              `json:"imageGCHighThresholdPercent"`
	ImageGCLowThreshold       *int              `json:"imageGCLowThresholdPercent"`
	ImageMaximumGCAge         metav1.Duration   `json:"imageMaximumGCAge"`
	ImageMinimumGCAge         metav1.Duration   `json:"imageMinimumGCAge"` // 0s: the default, as upstream
	SystemReserved            map[string]string `json:"systemReserved"`
	KubeReserved              map[string]string `json:"kubeReserved"`
	Authentication            struct {
		X509 struct {
			ClientCAFile string `json:"clientCAFile"`
		} `json:"x509"`
		Webhook struct {
			Enabled  *bool           `json:"enabled"`
			CacheTTL metav1.Duration `json:"cacheTTL"`
		} `json:"webhook"`
		Anonymous struct {
			Enabled *bool `json:"enabled"`
		} `json:"anonymous"`
	} `json:"authentication"`
	Authorization struct {
		Mode    string `json:"mode"`
		Webhook struct {
			CacheAuthorizedTTL   metav1.Duration `json:"cacheAuthorizedTTL"`
			CacheUnauthorizedTTL metav1.Duration `json:"cacheUnauthorizedTTL"`
		} `json:"webhook"`
	} `json:"authorization"`

	// Known, accepted only at what kubelet-lite does anyway.
	ServerTLSBootstrap bool            `json:"serverTLSBootstrap"`
	TLSCertFile        string          `json:"tlsCertFile"`
	TLSPrivateKeyFile  string          `json:"tlsPrivateKeyFile"`
	CgroupsPerQOS      *bool           `json:"cgroupsPerQOS"`
	FeatureGates       map[string]bool `json:"featureGates"`
	Logging            struct {
		Format         string          `json:"format"`
		FlushFrequency json.RawMessage `json:"flushFrequency"`
		Verbosity      int             `json:"verbosity"`
		Options        json.RawMessage `json:"options"`
	} `json:"logging"`
	MemorySwap struct {
		SwapBehavior string `json:"swapBehavior"`
	} `json:"memorySwap"`
	CrashLoopBackOff struct {
		MaxContainerRestartPeriod *metav1.Duration `json:"maxContainerRestartPeriod"`
	} `json:"crashLoopBackOff"`
	// Periods kubelet-lite keeps fixed; 0s (kubeadm writes it) means the
	// default.
	CPUManagerReconcilePeriod        metav1.Duration `json:"cpuManagerReconcilePeriod"`
	EvictionPressureTransitionPeriod metav1.Duration `json:"evictionPressureTransitionPeriod"`
	FileCheckFrequency               metav1.Duration `json:"fileCheckFrequency"`
	HTTPCheckFrequency               metav1.Duration `json:"httpCheckFrequency"`
	NodeStatusReportFrequency        metav1.Duration `json:"nodeStatusReportFrequency"`
	NodeStatusUpdateFrequency        metav1.Duration `json:"nodeStatusUpdateFrequency"`
	RuntimeRequestTimeout            metav1.Duration `json:"runtimeRequestTimeout"`
	ShutdownGracePeriod              metav1.Duration `json:"shutdownGracePeriod"`
	ShutdownGracePeriodCriticalPods  metav1.Duration `json:"shutdownGracePeriodCriticalPods"`
	StreamingConnectionIdleTimeout   metav1.Duration `json:"streamingConnectionIdleTimeout"`
	SyncFrequency                    metav1.Duration `json:"syncFrequency"`
	VolumeStatsAggPeriod             metav1.Duration `json:"volumeStatsAggPeriod"`
}

// checkUnsupported names every field set to something kubelet-lite does
// not do, with what it does instead.
func (f *fileConfig) checkUnsupported() error {
	var errs []error
	bad := func(cond bool, field string, value any, why string) {
		if cond {
			errs = append(errs, fmt.Errorf("%s: %v is not supported: %s", field, value, why))
		}
	}
	bad(f.Authorization.Mode != "" && f.Authorization.Mode != AuthzAlwaysAllow && f.Authorization.Mode != AuthzWebhook, "authorization.mode", f.Authorization.Mode,
		"AlwaysAllow or Webhook")
	bad(f.ServerTLSBootstrap, "serverTLSBootstrap", true, "the serving certificate is tlsCertFile or self-signed")
	bad(f.CgroupsPerQOS != nil && !*f.CgroupsPerQOS, "cgroupsPerQOS", false, "pods always go under the QoS cgroups")
	bad(len(f.FeatureGates) > 0, "featureGates", f.FeatureGates, "kubelet-lite has no feature gates")
	bad(f.Logging.Format != "" && f.Logging.Format != "text", "logging.format", f.Logging.Format, "use --log-format")
	bad(f.Logging.Verbosity != 0, "logging.verbosity", f.Logging.Verbosity, "use --log-level")
	bad(f.MemorySwap.SwapBehavior != "" && f.MemorySwap.SwapBehavior != "NoSwap", "memorySwap.swapBehavior", f.MemorySwap.SwapBehavior, "pods get no swap")
	bad(f.CrashLoopBackOff.MaxContainerRestartPeriod != nil, "crashLoopBackOff.maxContainerRestartPeriod", f.CrashLoopBackOff.MaxContainerRestartPeriod, "the back-off is the upstream default (10 s to 5 min)")
	for field, d := range map[string]metav1.Duration{
		"cpuManagerReconcilePeriod": f.CPUManagerReconcilePeriod,
		"fileCheckFrequency":        f.FileCheckFrequency, "httpCheckFrequency": f.HTTPCheckFrequency, "nodeStatusReportFrequency": f.NodeStatusReportFrequency,
		"nodeStatusUpdateFrequency": f.NodeStatusUpdateFrequency, "runtimeRequestTimeout": f.RuntimeRequestTimeout,
		"shutdownGracePeriod": f.ShutdownGracePeriod, "shutdownGracePeriodCriticalPods": f.ShutdownGracePeriodCriticalPods,
		"streamingConnectionIdleTimeout": f.StreamingConnectionIdleTimeout, "syncFrequency": f.SyncFrequency, "volumeStatsAggPeriod": f.VolumeStatsAggPeriod,
	} {
		bad(d.Duration != 0, field, d.Duration, "kubelet-lite keeps this period fixed (0s, the default, is accepted)")
	}
	return errors.Join(errs...)
}

// LoadFile fills what the command line did not set from a
// KubeletConfiguration file, decoded strictly: an unknown field, or a
// known one set to something kubelet-lite does not do, is an error that
// names it.
func (c *Config) LoadFile(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read --config: %w", err)
	}
	return c.LoadBytes(raw, path)
}

// LoadBytes is LoadFile of a document already read; path names it in
// errors and anchors its relative paths.
func (c *Config) LoadBytes(raw []byte, path string) error {
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return fmt.Errorf("parse --config %s: %w", path, err)
	}
	var f fileConfig
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return fmt.Errorf("parse --config %s: %w (kubelet-lite refuses fields it does not know)", path, err)
	}
	if f.Kind != "" && f.Kind != "KubeletConfiguration" {
		return fmt.Errorf("--config %s: kind %q, want KubeletConfiguration", path, f.Kind)
	}
	if f.APIVersion != "" && f.APIVersion != "kubelet.config.k8s.io/v1beta1" {
		return fmt.Errorf("--config %s: apiVersion %q, want kubelet.config.k8s.io/v1beta1", path, f.APIVersion)
	}
	if err := f.checkUnsupported(); err != nil {
		return fmt.Errorf("--config %s:\n%w", path, err)
	}
	return c.apply(&f, path)
}

// apply takes each file value whose flag was not given.
func (c *Config) apply(f *fileConfig, path string) error {
	unset := func(flag string) bool { return !c.flagSet[flag] }
	str := func(dst *string, flag, v string) {
		if unset(flag) && v != "" {
			*dst = v
		}
	}
	num := func(dst *int, flag string, v int) {
		if unset(flag) && v != 0 {
			*dst = v
		}
	}
	str(&c.PodManifestPath, "pod-manifest-path", f.StaticPodPath)
	num(&c.MaxPods, "max-pods", f.MaxPods)
	str(&c.CgroupRoot, "cgroup-root", f.CgroupRoot)
	str(&c.CgroupDriver, "cgroup-driver", f.CgroupDriver)
	str(&c.PodCIDR, "pod-cidr", f.PodCIDR)
	str(&c.RuntimeEndpoint, "container-runtime-endpoint", f.ContainerRuntimeEndpoint)
	str(&c.ClusterDomain, "cluster-domain", f.ClusterDomain)
	str(&c.PodLogsDir, "pod-logs-dir", f.PodLogsDir)
	str(&c.ContainerLogMaxSize, "container-log-max-size", f.ContainerLogMaxSize)
	num(&c.ContainerLogMaxFiles, "container-log-max-files", f.ContainerLogMaxFiles)
	str(&c.ClientCAFile, "client-ca-file", f.Authentication.X509.ClientCAFile)
	str(&c.Address, "address", f.Address)
	str(&c.AuthorizationMode, "authorization-mode", f.Authorization.Mode)
	str(&c.TLSCertFile, "tls-cert-file", f.TLSCertFile)
	str(&c.TLSPrivateKeyFile, "tls-private-key-file", f.TLSPrivateKeyFile)
	if unset("authentication-token-webhook") && f.Authentication.Webhook.Enabled != nil {
		c.AuthenticationTokenWebhook = *f.Authentication.Webhook.Enabled
	}
	if unset("anonymous-auth") && f.Authentication.Anonymous.Enabled != nil {
		c.AnonymousAuth = *f.Authentication.Anonymous.Enabled
	}
	num(&c.Port, "port", f.Port)
	if unset("eviction-hard") && f.EvictionHard != nil {
		ts, err := eviction.ParseMap(f.EvictionHard)
		if err != nil {
			return fmt.Errorf("--config %s: evictionHard: %w", path, err)
		}
		c.EvictionHard = ts
	}
	if unset("eviction-soft") && f.EvictionSoft != nil {
		ts, err := eviction.ParseMap(f.EvictionSoft)
		if err != nil {
			return fmt.Errorf("--config %s: evictionSoft: %w", path, err)
		}
		c.EvictionSoft = ts
	}
	if unset("eviction-soft-grace-period") && f.EvictionSoftGracePeriod != nil {
		c.EvictionSoftGracePeriod = f.EvictionSoftGracePeriod
	}
	if unset("eviction-pressure-transition-period") && f.EvictionPressureTransitionPeriod.Duration != 0 {
		c.EvictionPressureTransitionPeriod = f.EvictionPressureTransitionPeriod.Duration
	}
	if unset("eviction-minimum-reclaim") && f.EvictionMinimumReclaim != nil {
		c.EvictionMinimumReclaim = f.EvictionMinimumReclaim
	}
	if unset("image-gc-high-threshold") && f.ImageGCHighThreshold != nil {
		c.ImageGC.HighThresholdPercent = *f.ImageGCHighThreshold
	}
	if unset("image-gc-low-threshold") && f.ImageGCLowThreshold != nil {
		c.ImageGC.LowThresholdPercent = *f.ImageGCLowThreshold
	}
	if unset("minimum-image-ttl-duration") && f.ImageMinimumGCAge.Duration != 0 {
		c.ImageGC.MinAge = f.ImageMinimumGCAge.Duration
	}
	if unset("image-maximum-gc-age") && f.ImageMaximumGCAge.Duration != 0 {
		c.ImageGC.MaxAge = f.ImageMaximumGCAge.Duration
	}
	num(&c.EvictionMaxPodGracePeriod, "eviction-max-pod-grace-period", f.EvictionMaxPodGracePeriod)
	if unset("enforce-node-allocatable") && f.EnforceNodeAlloc != nil {
		c.EnforceNodeAllocatable = f.EnforceNodeAlloc
	}
	if unset("system-reserved") && f.SystemReserved != nil {
		c.SystemReserved = f.SystemReserved
	}
	if unset("kube-reserved") && f.KubeReserved != nil {
		c.KubeReserved = f.KubeReserved
	}
	if unset("rotate-certificates") {
		c.RotateCertificates = c.RotateCertificates || f.RotateCertificates
	}
	if unset("seccomp-default") {
		c.SeccompDefault = c.SeccompDefault || f.SeccompDefault
	}
	if unset("allowed-unsafe-sysctls") && f.AllowedUnsafeSysctls != nil {
		c.AllowedUnsafeSysctls = f.AllowedUnsafeSysctls
	}
	if unset("resolv-conf") && f.ResolvConf != nil {
		c.ResolvConf = *f.ResolvConf
	}
	if unset("healthz-bind-address") && (f.HealthzBindAddress != "" || f.HealthzPort != nil) {
		host, port, _ := net.SplitHostPort(c.HealthzAddr)
		if f.HealthzBindAddress != "" {
			host = f.HealthzBindAddress
		}
		if f.HealthzPort != nil {
			port = strconv.Itoa(*f.HealthzPort)
		}
		c.HealthzAddr = net.JoinHostPort(host, port)
		if f.HealthzPort != nil && *f.HealthzPort == 0 {
			c.HealthzAddr = "" // 0 turns it off, as upstream
		}
	}
	if unset("cluster-dns") && len(f.ClusterDNS) > 0 {
		c.ClusterDNS = nil
		for _, s := range f.ClusterDNS {
			ip, err := netip.ParseAddr(s)
			if err != nil {
				return fmt.Errorf("--config %s: clusterDNS: %w", path, err)
			}
			c.ClusterDNS = append(c.ClusterDNS, ip)
		}
	}
	return nil
}
