package cli

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"
)

// ApplyConfigFile sets the flags a YAML file names ("devices: [eth0]",
// "sync-period: 30s") that the command line did not set: the command
// line wins, as kube-proxy's flags win over its --config. An unknown name
// is an error naming it. No file ("") changes nothing.
func ApplyConfigFile(fs *pflag.FlagSet, path string) error {
	if path == "" {
		return nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read --config: %w", err)
	}
	return ApplyConfig(fs, raw, path)
}

// ApplyConfig is ApplyConfigFile of a document already read; path names
// it in errors.
func ApplyConfig(fs *pflag.FlagSet, raw []byte, path string) error {
	var settings map[string]any
	if err := yaml.Unmarshal(raw, &settings); err != nil {
		return fmt.Errorf("parse --config %s: %w", path, err)
	}
	for _, name := range slices.Sorted(maps.Keys(settings)) {
		f := fs.Lookup(name)
		if f == nil || name == "config" {
			return fmt.Errorf("--config %s: %q is not a flag of this command (see --help)", path, name)
		}
		if f.Changed {
			continue
		}
		var value string
		switch v := settings[name].(type) {
		case []any:
			parts := make([]string, len(v))
			for i, p := range v {
				parts[i] = fmt.Sprint(p)
			}
			value = strings.Join(parts, ",")
		case nil:
			continue
		default:
			value = fmt.Sprint(v)
		}
		if err := fs.Set(name, value); err != nil {
			return fmt.Errorf("--config %s: %s: %w", path, name, err)
		}
	}
	return nil
}
