package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hivelet/hivelet/cmd/internal/cli"
	kubeletlite "github.com/hivelet/hivelet/kubelet-lite"
)

// execStart is a unit's command line, without the binary.
func execStart(t *testing.T, unit string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("../../deploy/systemd", unit))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, "ExecStart="); ok {
			return strings.Fields(v)[1:]
		}
	}
	t.Fatalf("%s: no ExecStart", unit)
	return nil
}

func TestSystemdUnitsAndSettings(t *testing.T) {
	for _, unit := range []string{"hivelet-node.service", "hivelet-agent.service"} {
		args := execStart(t, unit)
		c := newNodeCmd()
		if args[0] == "agent" {
			c = newAgentCmd()
		}
		if err := c.ParseFlags(args[1:]); err != nil {
			t.Errorf("%s: %v", unit, err)
		}
		// The settings file it names, from the repository's sample.
		conf := c.Flags().Lookup("config").Value.String()
		sample := filepath.Join("../../deploy/systemd", filepath.Base(conf))
		if args[0] == "agent" {
			if err := cli.ApplyConfigFile(c.Flags(), sample); err != nil {
				t.Errorf("%s: %v", sample, err)
			}
			continue
		}
		doc, err := applyNodeConfig(c.Flags(), sample)
		if err != nil {
			t.Fatalf("%s: %v", sample, err)
		}
		var k kubeletlite.Config
		if err := k.LoadBytes(doc, sample); err != nil {
			t.Errorf("%s: its KubeletConfiguration: %v", sample, err)
		}
		if k.ClusterDomain != "cluster.local" {
			t.Errorf("%s: clusterDomain %q not loaded", sample, k.ClusterDomain)
		}
		for flag, want := range map[string]string{"manifests": "/etc/hivelet/services", "pod-manifest-path": "/etc/kubernetes/manifests", "masquerade": "true"} {
			if got := c.Flags().Lookup(flag).Value.String(); got != want {
				t.Errorf("%s: --%s = %q, want %q", sample, flag, got, want)
			}
		}
	}
}

func TestNodeConfigRefusals(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown kind":        "kind: KubeProxyConfiguration\n",
		"two kubelet docs":    "kind: KubeletConfiguration\n---\nkind: KubeletConfiguration\n",
		"unknown flag":        "no-such-flag: 1\n",
		"bad value":           "masquerade: maybe\n",
		"not yaml":            "a: [\n",
		"config names itself": "config: /etc/x\n",
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".yaml")
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := applyNodeConfig(newNodeCmd().Flags(), path); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// The command line wins over the file.
	path := filepath.Join(dir, "ok.yaml")
	if err := os.WriteFile(path, []byte("manifests: /from/file\nmasquerade: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newNodeCmd()
	if err := c.ParseFlags([]string{"--manifests", "/from/flag"}); err != nil {
		t.Fatal(err)
	}
	if _, err := applyNodeConfig(c.Flags(), path); err != nil {
		t.Fatal(err)
	}
	if got := c.Flags().Lookup("manifests").Value.String(); got != "/from/flag" {
		t.Errorf("--manifests = %q, want the command line's", got)
	}
	if got := c.Flags().Lookup("masquerade").Value.String(); got != "true" {
		t.Errorf("--masquerade = %q, want the file's", got)
	}
}

func TestNodeNeedsASource(t *testing.T) {
	for args, want := range map[string]string{
		"--pod-manifest-path /x":         "standalone",
		"--manifests /x":                 "standalone",
		"--kubeconfig /k --manifests /x": "--manifests is for a node without an API server",
	} {
		c := newNodeCmd()
		c.SetArgs(strings.Fields(args))
		c.SetOut(os.Stderr)
		err := c.Execute()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("node %s: %v, want an error with %q", args, err, want)
		}
	}
}
