package kubeletlite

import (
	"strings"
	"testing"
	"time"

	"github.com/hivelet/hivelet/kubelet-lite/eviction"
)

// TestEvictionConfig: what the flags become, and each bad value refused
// with a message naming the flag.
func TestEvictionConfig(t *testing.T) {
	soft, _ := eviction.ParseFlag("memory.available<1Gi")
	cfg, err := evictionConfig(Config{EvictionSoft: soft, EvictionSoftGracePeriod: map[string]string{"memory.available": "1m30s"},
		EvictionMinimumReclaim: map[string]string{"memory.available": "500Mi"}, EvictionMaxPodGracePeriod: 30, EvictionPressureTransitionPeriod: time.Minute})
	if err != nil || cfg.SoftGrace[eviction.MemoryAvailable] != 90*time.Second || len(cfg.MinReclaim) != 1 || cfg.MaxPodGrace != 30 || cfg.PressureTransition != time.Minute {
		t.Fatalf("%+v %v", cfg, err)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{EvictionSoft: soft}, "has no --eviction-soft-grace-period"},
		{Config{EvictionSoftGracePeriod: map[string]string{"memory.available": "soon"}}, "--eviction-soft-grace-period"},
		{Config{EvictionMinimumReclaim: map[string]string{"memory.available": "lots"}}, "--eviction-minimum-reclaim"},
		{Config{EvictionPressureTransitionPeriod: -time.Second}, "--eviction-pressure-transition-period"},
	} {
		if _, err := evictionConfig(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error with %q", tc.cfg, err, tc.want)
		}
	}
	if pods, err := enforcement([]string{"pods"}); err != nil || !pods {
		t.Errorf("pods: %v %v", pods, err)
	}
	if pods, err := enforcement([]string{"none"}); err != nil || pods {
		t.Errorf("none: %v %v", pods, err)
	}
	if _, err := enforcement([]string{"pods", "system-reserved"}); err == nil || !strings.Contains(err.Error(), "system-reserved") {
		t.Errorf("system-reserved accepted: %v", err)
	}
}
