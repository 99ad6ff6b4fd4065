package daemon

import (
	"net/netip"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/hivelet/hivelet/datapath"
)

// The flags write the config they belong to, defaults included.
func TestConfigAddFlags(t *testing.T) {
	var c Config
	f := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	c.AddFlags(f)
	if c.BPFFSDir != datapath.DefaultBPFFSDir || c.SyncPeriod != 30*time.Second || c.Devices != DevicesAuto || !c.HostPorts {
		t.Errorf("defaults: %+v", c)
	}
	err := f.Parse([]string{"--bpffs", "/sys/fs/bpf/x", "--cluster-cidr", "10.244.1.0/16,fd00::/48", "--snat-port-range", "40000-41000",
		"--bpf-lb-algorithm", "maglev", "--masquerade", "--bpf-ct-map-max", "1024", "--sync-period", "1s"})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00::/48")}
	if c.BPFFSDir != "/sys/fs/bpf/x" || len(c.ClusterCIDRs) != 2 || c.ClusterCIDRs[0] != want[0] || c.ClusterCIDRs[1] != want[1] ||
		c.NATPortMin != 40000 || c.NATPortMax != 41000 || c.LBAlgorithm != "maglev" || !c.Masquerade || c.MapSizes.CT != 1024 || c.SyncPeriod != time.Second {
		t.Errorf("parsed: %+v", c)
	}
	if err := f.Parse([]string{"--snat-port-range", "80-90"}); err == nil {
		t.Error("a port range below 1024 accepted")
	}
}
