package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestApplyConfigFile(t *testing.T) {
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	devices := fs.StringSlice("devices", nil, "")
	period := fs.Duration("sync-period", time.Minute, "")
	host := fs.Bool("enable-host-port", true, "")
	name := fs.String("hostname-override", "", "")
	if err := fs.Parse([]string{"--hostname-override", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("devices: [eth0, eth1]\nsync-period: 30s\nenable-host-port: false\nhostname-override: from-file\n")
	if err := ApplyConfigFile(fs, path); err != nil {
		t.Fatal(err)
	}
	if strings.Join(*devices, ",") != "eth0,eth1" || *period != 30*time.Second || *host || *name != "from-flag" {
		t.Fatalf("devices %v period %v host %v name %q", *devices, *period, *host, *name)
	}
	for body, want := range map[string]string{
		"no-such-flag: 1\n":    `"no-such-flag" is not a flag`,
		"sync-period: soon\n":  "sync-period",
		"devices: [eth0\n":     "parse --config",
		"config: other.yaml\n": `"config" is not a flag`,
	} {
		write(body)
		fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
		fs.StringSlice("devices", nil, "")
		fs.Duration("sync-period", time.Minute, "")
		fs.String("config", "", "")
		if err := ApplyConfigFile(fs, path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error with %q", body, err, want)
		}
	}
}
