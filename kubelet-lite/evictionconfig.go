package kubeletlite

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/hivelet/hivelet/kubelet-lite/eviction"
	"github.com/hivelet/hivelet/kubelet-lite/pods"
)

// evictionConfig turns the eviction flags into the eviction manager's
// policy: every soft threshold needs a grace period, as upstream insists.
func evictionConfig(cfg Config) (eviction.Config, error) {
	out := eviction.Config{Hard: cfg.EvictionHard, Soft: cfg.EvictionSoft, MaxPodGrace: int64(cfg.EvictionMaxPodGracePeriod),
		SoftGrace: map[eviction.Signal]time.Duration{}, Critical: pods.IsCritical, PressureTransition: cfg.EvictionPressureTransitionPeriod}
	if cfg.EvictionPressureTransitionPeriod < 0 {
		return out, fmt.Errorf("--eviction-pressure-transition-period %v: must not be negative", cfg.EvictionPressureTransitionPeriod)
	}
	for sig, v := range cfg.EvictionSoftGracePeriod {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return out, fmt.Errorf("--eviction-soft-grace-period %s=%q: want a duration such as 1m30s", sig, v)
		}
		out.SoftGrace[eviction.Signal(sig)] = d
	}
	for _, t := range cfg.EvictionSoft {
		if _, ok := out.SoftGrace[t.Signal]; !ok {
			return out, fmt.Errorf("--eviction-soft %s has no --eviction-soft-grace-period %s=<duration>", t, t.Signal)
		}
	}
	var err error
	if out.MinReclaim, err = eviction.ParseMap(cfg.EvictionMinimumReclaim); err != nil {
		return out, fmt.Errorf("--eviction-minimum-reclaim: %w", err)
	}
	return out, nil
}

// mergeUsage adds b's usage to a's, pod by pod and container by
// container.
func mergeUsage(a, b map[types.UID]eviction.PodUsage) map[types.UID]eviction.PodUsage {
	out := map[types.UID]eviction.PodUsage{}
	for _, src := range []map[types.UID]eviction.PodUsage{a, b} {
		for uid, pu := range src {
			o := out[uid]
			if o.Containers == nil {
				o.Containers = map[string]uint64{}
			}
			o.Total += pu.Total
			for c, v := range pu.Containers {
				o.Containers[c] += v
			}
			out[uid] = o
		}
	}
	return out
}
