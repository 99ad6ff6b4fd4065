package daemon

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// Settings that cannot work are refused before anything is loaded, with
// the flag to fix named.
func TestRunRefusesBadSettings(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{ManifestsDir: t.TempDir(), Masquerade: true}, "--cluster-cidr"},
		{Config{}, "no source"},
		{Config{ManifestsDir: t.TempDir(), PodRoutes: "mesh"}, "--pod-routes"},
	} {
		if err := Run(context.Background(), tc.cfg, log); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
}
