package install

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInstallAndUninstall(t *testing.T) {
	dir := t.TempDir()
	plugin := filepath.Join(dir, "built-plugin")
	if err := os.WriteFile(plugin, []byte("#!binary"), 0o700); err != nil {
		t.Fatal(err)
	}
	opts := Options{
		BinDir: filepath.Join(dir, "bin"), ConfDir: filepath.Join(dir, "net.d"), Plugin: plugin,
		ConfName: "05-hivelet.conflist", Network: "hivelet", MTU: 1450, DataDir: "/var/lib/node1/ipam",
		PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24"), netip.MustParsePrefix("fd00:10:244:1::/64")},
	}
	for i := 0; i < 2; i++ { // idempotent
		if err := Install(opts); err != nil {
			t.Fatal(err)
		}
	}
	bin, err := os.Stat(filepath.Join(opts.BinDir, PluginName))
	if err != nil || bin.Mode().Perm() != 0o755 {
		t.Fatalf("plugin: %v %v", bin, err)
	}
	raw, err := os.ReadFile(filepath.Join(opts.ConfDir, opts.ConfName))
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		CNIVersion, Name string
		Plugins          []map[string]any
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		t.Fatal(err)
	}
	if list.CNIVersion != DefaultCNIVersion || list.Name != "hivelet" || len(list.Plugins) != 1 || list.Plugins[0]["type"] != PluginName || list.Plugins[0]["mtu"] != 1450.0 {
		t.Errorf("conflist: %s", raw)
	}
	if ipam, _ := list.Plugins[0]["ipam"].(map[string]any); ipam["dataDir"] != opts.DataDir {
		t.Errorf("conflist lacks ipam.dataDir %q: %s", opts.DataDir, raw)
	}
	if !bytes.Contains(raw, []byte(`"subnet": "fd00:10:244:1::/64"`)) {
		t.Errorf("conflist lacks the IPv6 range: %s", raw)
	}
	leftovers, _ := filepath.Glob(filepath.Join(opts.ConfDir, ".*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
	if err := Uninstall(opts); err != nil {
		t.Fatal(err)
	}
	if err := Uninstall(opts); err != nil {
		t.Fatalf("second uninstall: %v", err)
	}
	if _, err := os.Stat(filepath.Join(opts.ConfDir, opts.ConfName)); !os.IsNotExist(err) {
		t.Errorf("conflist still there: %v", err)
	}
}

func TestConflistRejectsBadInput(t *testing.T) {
	if _, err := Conflist(Options{Network: "hivelet"}); err == nil || !strings.Contains(err.Error(), "--pod-cidr") {
		t.Errorf("no pod CIDR: %v", err)
	}
	_, err := Conflist(Options{Network: "hivelet", MTU: 99, PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}})
	if err == nil || !strings.Contains(err.Error(), "mtu") {
		t.Errorf("bad MTU: %v", err)
	}
}
