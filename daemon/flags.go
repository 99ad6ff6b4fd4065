package daemon

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/hivelet/hivelet/daemon/flagvalue"
	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
	"github.com/hivelet/hivelet/datapath"
)

// AddFlags registers the agent's settings that `hivelet agent` and
// `hivelet node` share, kube-proxy's and Cilium's names where they have
// one: everything but the sources, the node's name and addresses, the
// listen addresses and the one-shot modes, which each command names.
// Defaults are set here; c is what the flags write.
func (c *Config) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&c.BPFFSDir, "bpffs", datapath.DefaultBPFFSDir, "directory on a BPF filesystem for pinned maps and links (a bpffs is mounted if none covers it)")
	f.StringVar(&c.Cgroup2, "cgroup2", "", "cgroup v2 directory to attach the socket hooks to (default: the cgroup2 root from /proc/mounts)")
	f.DurationVar(&c.SyncPeriod, "sync-period", 30*time.Second, "how often the LB maps are checked against what the agent wrote (a full resync runs when they differ; 0: never); also the node routes resync period")
	f.DurationVar(&c.MinSyncInterval, "min-sync-period", 5*time.Millisecond, "minimum time between the starts of two syncs; changes arriving faster are merged into one (a partial sync costs well under a millisecond)")
	f.Uint32Var(&c.MapSizes.Services, "bpf-lb-service-map-max", datapath.DefaultMapSizes.Services, "entries per services map (one per frontend plus one per backend slot)")
	f.Uint32Var(&c.MapSizes.Backends, "bpf-lb-backend-map-max", datapath.DefaultMapSizes.Backends, "entries per backends map")
	f.Uint32Var(&c.MapSizes.RevNat, "bpf-lb-revnat-map-max", datapath.DefaultMapSizes.RevNat, "entries per reverse-NAT map (one per frontend)")
	f.Uint32Var(&c.MapSizes.SockRevNat, "bpf-sock-revnat-map-max", datapath.DefaultMapSizes.SockRevNat, "entries per socket reverse-NAT LRU map (one per socket and backend)")
	f.Uint32Var(&c.MapSizes.Affinity, "bpf-lb-affinity-map-max", datapath.DefaultMapSizes.Affinity, "entries in the session-affinity LRU map (one per client namespace and service with affinity)")
	f.BoolVar(&c.Masquerade, "masquerade", false, "give traffic from pods to destinations outside --cluster-cidr the node's address (nftables table inet hivelet-masquerade, rewritten every --sync-period)")
	f.Var(flagvalue.CIDRs(&c.ClusterCIDRs), "cluster-cidr", "the pod CIDRs of the whole cluster, comma-separated (one per family): traffic within them is never masqueraded")
	f.StringVar(&c.PodRoutes, "pod-routes", "none", "native: route every other node's pod CIDRs (Node spec.podCIDRs) via its InternalIP, for nodes on a shared link; vxlan: through a VXLAN overlay (UDP 8472) to that address, for nodes that are not (pod MTU: 50 below the node's); none: leave pod routing to something else")
	f.StringVar(&c.Devices, "devices", DevicesAuto, "devices where clients from outside reach NodePorts, external IPs and load-balancer IPs (TC programs with conntrack and SNAT): \"auto\" (those of the default routes and node addresses), a comma-separated list, or \"none\" for socket LB only")
	f.StringVar(&c.LBAlgorithm, "bpf-lb-algorithm", "random", "how clients from outside pick a backend: random, or maglev (consistent hashing: every node picks the same backend for a flow); the annotation "+lb.AlgorithmAnnotation+" overrides it per Service")
	f.Uint32Var(&c.MaglevTableSize, "bpf-lb-maglev-table-size", datapath.DefaultMaglevTableSize, "slots of each Maglev table, a prime; more slots spread more evenly over many backends (4 bytes each per Service)")
	f.Uint32Var(&c.MapSizes.CT, "bpf-ct-map-max", datapath.DefaultMapSizes.CT, "entries in the connection-tracking LRU map (two per flow from outside to a local backend, one to a remote one)")
	f.Uint32Var(&c.MapSizes.NAT, "bpf-nat-map-max", datapath.DefaultMapSizes.NAT, "entries in the SNAT LRU map (one per flow from outside to a backend on another node)")
	f.Uint32Var(&c.MapSizes.SrcRanges, "bpf-lb-source-range-map-max", datapath.DefaultMapSizes.SrcRanges, "loadBalancerSourceRanges prefixes, all Services together")
	f.Uint32Var(&c.MapSizes.Maglev, "bpf-lb-maglev-map-max", datapath.DefaultMapSizes.Maglev, "frontends with a Maglev table")
	f.Var(&flagvalue.PortRange{Min: &c.NATPortMin, Max: &c.NATPortMax}, "snat-port-range", fmt.Sprintf("ports flows to other nodes' backends are SNATed to, MIN-MAX (default %d-%d, above the kernel's ephemeral range)", datapath.DefaultNATPortMin, datapath.DefaultNATPortMax))
	f.BoolVar(&c.HostPorts, "enable-host-port", true, "serve the hostPorts of this node's pods from the BPF maps, as NodePorts with the pod as the one backend (needs list and watch on pods; the portmap CNI plugin is then not needed)")
	f.BoolVar(&c.SocketLBHostOnly, "socket-lb-host-only", false, "socket LB serves only the host's network namespace; pods' Service traffic is translated per packet on their veths (hivelet-cni's hl* host ends) instead, as service meshes and sandboxed runtimes need")
	f.StringVar(&c.HealthCheckAddr, "health-check-address", "", "address healthCheckNodePorts of externalTrafficPolicy Local Services listen on (default: every address)")
}
