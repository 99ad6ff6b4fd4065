package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"

	"github.com/hivelet/hivelet/cmd/internal/cli"
	"github.com/hivelet/hivelet/cmd/internal/kubeletcmd"
	"github.com/hivelet/hivelet/daemon"
	"github.com/hivelet/hivelet/daemon/localendpoints"
	"github.com/hivelet/hivelet/datapath"
	kubeletlite "github.com/hivelet/hivelet/kubelet-lite"
)

func newNodeCmd() *cobra.Command {
	kopts := kubeletcmd.NewOptions()
	agent := daemon.Config{MapSizes: datapath.DefaultMapSizes}
	var configFile, proxyKubeconfig, logLevel, logForm string
	cmd := &cobra.Command{
		Use:   "node (--kubeconfig FILE | --pod-manifest-path DIR --manifests DIR) [flags]",
		Short: "Run a whole node: the kubelet and the service proxy agent in one process",
		Long: `Run a whole node: kubelet-lite runs the pods through CRI, and the agent
serves the Services with its BPF programs, in one process with one set of
flags (the upstream kubelet's names, and the agent's) and one --config file.

With an API server (--kubeconfig), the node registers, runs the pods bound
to it, and the agent serves the cluster's Services.

With none, the node stands alone, as an edge node does: the static pods of
--pod-manifest-path run, and the Services of --manifests are served with
the endpoints an EndpointSlice controller would give them, found among this
node's pods by each Service's selector; they follow the pods' readiness.

--config is a YAML file of one or two documents: flag settings of this
command ("masquerade: true", "node-ip: [192.0.2.10]"), and a
KubeletConfiguration (kind: KubeletConfiguration). Flags on the command line
win over both.`,
		Example: `  hivelet node --pod-manifest-path /etc/kubernetes/manifests --manifests /etc/hivelet/manifests
  hivelet node --kubeconfig /etc/kubernetes/kubelet.conf --config /etc/hivelet/node.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kubeletDoc, err := applyNodeConfig(cmd.Flags(), configFile)
			if err != nil {
				return err
			}
			log, err := cli.NewLogger(logLevel, logForm)
			if err != nil {
				return err
			}
			if err := kopts.Complete(cmd.Flags()); err != nil {
				return err
			}
			k := &kopts.Config
			if kubeletDoc != nil {
				if err := k.LoadBytes(kubeletDoc, configFile); err != nil {
					return err
				}
			}
			// One node: the agent takes its name, addresses and API server
			// from the kubelet's settings.
			agent.NodeName, agent.NodeIPs, agent.KubeAPICompression = k.NodeName, k.NodeIPs, k.KubeAPICompression
			agent.Kubeconfig = k.Kubeconfig
			if proxyKubeconfig != "" {
				agent.Kubeconfig = proxyKubeconfig
			}
			switch {
			case agent.Kubeconfig == "" && (agent.ManifestsDir == "" || k.PodManifestPath == ""):
				return errors.New("standalone (no --kubeconfig) needs --pod-manifest-path for the pods and --manifests for the Services")
			case agent.Kubeconfig != "" && agent.ManifestsDir != "":
				return errors.New("--manifests is for a node without an API server: drop it or --kubeconfig")
			case agent.Kubeconfig == "":
				agent.LocalPods = localendpoints.NewPods()
				k.PodObserver = agent.LocalPods
			}
			klog.SetSlogLogger(log)
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runNode(ctx, agent, *k, log)
		},
	}
	f := cmd.Flags()
	kopts.AddFlags(f)
	agent.AddFlags(f)
	f.StringVar(&configFile, "config", "", "YAML file: flag settings of this command, and/or a KubeletConfiguration document (---, kind: KubeletConfiguration); flags on the command line win")
	f.StringVar(&agent.ManifestsDir, "manifests", "", "standalone: directory of Service (and EndpointSlice) manifests; Services with a selector get this node's matching pods as endpoints")
	f.StringVar(&proxyKubeconfig, "proxy-kubeconfig", "", "kubeconfig of the agent's identity (needs list and watch on services, endpointslices, nodes and pods; default: --kubeconfig's, the node's)")
	f.StringVar(&agent.APIServer, "k8s-api-server", "", "the API server's URL for the agent, replacing its kubeconfig's")
	f.StringVar(&agent.HealthzAddr, "proxy-healthz-bind-address", "0.0.0.0:10256", "address of the agent's /healthz and /livez (kube-proxy's); empty disables")
	f.StringVar(&agent.MetricsAddr, "proxy-metrics-bind-address", "127.0.0.1:10249", "address of the agent's Prometheus /metrics (kube-proxy's); empty disables")
	cli.LogFlags(f, &logLevel, &logForm)
	return cmd
}

// applyNodeConfig reads --config: a document without a kind sets the
// flags the command line did not; a KubeletConfiguration document is
// returned, for the kubelet to load once it knows which flags were given.
func applyNodeConfig(fs *pflag.FlagSet, path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read --config: %w", err)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	var kubelet [][]byte
	for doc := 1; ; doc++ {
		d, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse --config %s: document %d: %w", path, doc, err)
		}
		var head struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal(d, &head); err != nil {
			return nil, fmt.Errorf("parse --config %s: document %d: %w", path, doc, err)
		}
		switch head.Kind {
		case "":
			if len(bytes.TrimSpace(d)) == 0 {
				continue
			}
			if err := cli.ApplyConfig(fs, d, path); err != nil {
				return nil, err
			}
		case "KubeletConfiguration":
			kubelet = append(kubelet, d)
		default:
			return nil, fmt.Errorf("--config %s: document %d: kind %q: want flag settings (no kind) or KubeletConfiguration", path, doc, head.Kind)
		}
	}
	if len(kubelet) > 1 {
		return nil, fmt.Errorf("--config %s: %d KubeletConfiguration documents, want at most one", path, len(kubelet))
	}
	if len(kubelet) == 1 {
		return kubelet[0], nil
	}
	return nil, nil
}

// runNode runs the kubelet and the agent until ctx ends or either fails;
// a failure of one stops the other, so the node's supervisor restarts
// both (pods and pinned maps survive that).
func runNode(ctx context.Context, agent daemon.Config, kubelet kubeletlite.Config, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := f(ctx)
			if err != nil && ctx.Err() == nil {
				err = fmt.Errorf("%s: %w", name, err)
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			if ctx.Err() == nil {
				log.Error("Part of the node stopped; stopping the rest", "part", name, "error", err)
			}
			cancel()
		}()
	}
	run("kubelet", func(ctx context.Context) error {
		return kubeletlite.Run(ctx, kubelet, log.With("part", "kubelet"))
	})
	run("agent", func(ctx context.Context) error {
		return daemon.Run(ctx, agent, log.With("part", "agent"))
	})
	wg.Wait()
	return errors.Join(errs...)
}
