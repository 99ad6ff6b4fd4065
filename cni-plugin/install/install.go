// Package install puts hivelet-cni where container runtimes look for it:
// the plugin binary in the CNI bin dir and a conflist in the CNI conf dir,
// each written to a temporary file and renamed into place, so a runtime
// never reads half a file.
package install

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/hivelet/hivelet/cni-plugin/config"
)

// Options say what to install where.
type Options struct {
	BinDir, ConfDir string
	Plugin          string // the hivelet-cni binary to copy
	ConfName        string // e.g. 05-hivelet.conflist
	Network         string // the network's name
	PodCIDRs        []netip.Prefix
	MTU             int
	Standalone      bool
	BPFFS           string
	// DataDir is where the plugin keeps its address leases (host-local's
	// dataDir); empty: the plugin's default under /var/lib/cni. Nodes
	// sharing one machine need one each.
	DataDir string
	// CNIVersion of the conflist: 1.0.0 works with every current runtime
	// (containerd 1.6 and 1.7 reject 1.1.0 results); 1.1.0 adds STATUS
	// and GC for runtimes that call them.
	CNIVersion string
}

// DefaultCNIVersion is what `hivelet cni install` writes by default.
const DefaultCNIVersion = "1.0.0"

// PluginName is the plugin's file name in the bin dir and its "type".
const PluginName = "hivelet-cni"

// Conflist renders the network configuration list for opts, checked by
// the same parser the plugin uses.
func Conflist(opts Options) ([]byte, error) {
	if len(opts.PodCIDRs) == 0 {
		return nil, errors.New("no pod CIDR: pass --pod-cidr (the node's spec.podCIDRs, e.g. 10.244.1.0/24,fd00:10:244:1::/64)")
	}
	var ranges [][]map[string]string
	for _, p := range opts.PodCIDRs {
		ranges = append(ranges, []map[string]string{{"subnet": p.Masked().String()}})
	}
	ipam := map[string]any{"ranges": ranges}
	if opts.DataDir != "" {
		ipam["dataDir"] = opts.DataDir
	}
	plugin := map[string]any{"type": PluginName, "ipam": ipam}
	if opts.MTU != 0 {
		plugin["mtu"] = opts.MTU
	}
	if opts.Standalone {
		plugin["standalone"] = true
	}
	if opts.BPFFS != "" {
		plugin["bpffs"] = opts.BPFFS
	}
	if opts.CNIVersion == "" {
		opts.CNIVersion = DefaultCNIVersion
	}
	list := map[string]any{"cniVersion": opts.CNIVersion, "name": opts.Network, "plugins": []any{plugin}}
	// libcni hands each plugin the list's name and version: check that.
	check := map[string]any{"cniVersion": opts.CNIVersion, "name": opts.Network}
	for k, v := range plugin {
		check[k] = v
	}
	b, err := json.Marshal(check)
	if err != nil {
		return nil, err
	}
	if _, err := config.Parse(b, ""); err != nil {
		return nil, fmt.Errorf("render conflist: %w", err)
	}
	if !slices.Contains(config.Versions.SupportedVersions(), opts.CNIVersion) {
		return nil, fmt.Errorf("CNI version %q: hivelet-cni speaks %v", opts.CNIVersion, config.Versions.SupportedVersions())
	}
	return json.MarshalIndent(list, "", "  ")
}

// Install copies the plugin and writes the conflist.
func Install(opts Options) error {
	conf, err := Conflist(opts)
	if err != nil {
		return err
	}
	src, err := os.Open(opts.Plugin)
	if err != nil {
		return fmt.Errorf("open plugin binary: %w (build it with `make build`, or pass --plugin)", err)
	}
	defer src.Close()
	if err := writeAtomic(filepath.Join(opts.BinDir, PluginName), src, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp("", "conflist")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.Write(append(conf, '\n')); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(opts.ConfDir, opts.ConfName), f, 0o644)
}

// Uninstall removes the conflist first (runtimes stop using the network),
// then the plugin. Missing files are fine.
func Uninstall(opts Options) error {
	var errs []error
	for _, p := range []string{filepath.Join(opts.ConfDir, opts.ConfName), filepath.Join(opts.BinDir, PluginName)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// writeAtomic writes r to path through a temporary file in the same dir,
// synced, then renamed over path.
func writeAtomic(path string, r io.Reader, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename: a no-op
	_, err = io.Copy(tmp, r)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
