// Package metrics defines the agent's Prometheus metrics. Names follow
// kube-proxy's (kubeproxy_* there, hivelet_* here) so existing dashboards
// and alerts carry over.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics is one agent's metric set, registered on its own registry.
type Metrics struct {
	Registry *prometheus.Registry

	SyncDuration              prometheus.Histogram
	NetworkProgrammingLatency prometheus.Histogram
	SyncErrors                prometheus.Counter
	LastSync                  prometheus.Gauge
	Services                  prometheus.Gauge
	EndpointSlices            prometheus.Gauge
	Frontends                 prometheus.Gauge
	Backends                  prometheus.Gauge
	MapEntries                *prometheus.GaugeVec
	MapCapacity               *prometheus.GaugeVec
	MapFull                   prometheus.Counter
	Verifications             *prometheus.CounterVec
	ConntrackEntries          *prometheus.GaugeVec
	ConntrackGCDeleted        prometheus.Counter
	ConntrackGCInterval       prometheus.Gauge
}

// New creates and registers the metrics.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		SyncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "hivelet", Name: "sync_proxy_rules_duration_seconds",
			Help:    "How long one sync of the service datapath took.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}),
		NetworkProgrammingLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "hivelet", Name: "network_programming_duration_seconds",
			Help: "Time from a change of a Service's endpoints (the EndpointSlice's " +
				"endpoints.kubernetes.io/last-change-trigger-time) to the datapath serving it.",
			Buckets: append(prometheus.ExponentialBuckets(0.001, 2, 15), 60, 120, 300, 600),
		}),
		SyncErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "hivelet", Name: "sync_proxy_rules_errors_total",
			Help: "Syncs that failed; each is retried with a full resync.",
		}),
		LastSync: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "hivelet", Name: "sync_proxy_rules_last_timestamp_seconds",
			Help: "When the last successful sync finished (Unix time).",
		}),
		Services: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "hivelet", Name: "services",
			Help: "Services the agent follows (headless, ExternalName and other proxies' excluded).",
		}),
		EndpointSlices: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "hivelet", Name: "endpoint_slices",
			Help: "EndpointSlices the agent follows.",
		}),
		Frontends: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "hivelet", Name: "service_frontends",
			Help: "Service frontends (address, port, protocol) programmed in the datapath.",
		}),
		Backends: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "hivelet", Name: "service_backends",
			Help: "Distinct backends programmed in the datapath.",
		}),
		MapEntries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "hivelet", Name: "bpf_map_entries",
			Help: "Entries the agent keeps in each BPF map (both address families).",
		}, []string{"map"}),
		MapCapacity: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "hivelet", Name: "bpf_map_capacity",
			Help: "Size limit of each BPF map, per address family.",
		}, []string{"map"}),
		MapFull: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "hivelet", Name: "bpf_map_full_errors_total",
			Help: "Map writes refused because a map was full; raise its --bpf-lb-*-max flag.",
		}),
		Verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "hivelet", Name: "datapath_verifications_total",
			Help: "Periodic checks of the LB maps against what the agent wrote, by result: ok, drift (repaired by a full sync), error.",
		}, []string{"result"}),
		ConntrackEntries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "hivelet", Name: "conntrack_entries",
			Help: "Live entries in the connection-tracking (ct) and SNAT (nat) maps after the last GC.",
		}, []string{"map"}),
		ConntrackGCDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "hivelet", Name: "conntrack_gc_deleted_total",
			Help: "Expired connection-tracking and SNAT entries removed.",
		}),
		ConntrackGCInterval: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "hivelet", Name: "conntrack_gc_interval_seconds",
			Help: "Current interval between connection-tracking GC passes (adapts to churn).",
		}),
	}
	m.Registry.MustRegister(m.ConntrackEntries, m.ConntrackGCDeleted, m.ConntrackGCInterval)
	m.Registry.MustRegister(m.SyncDuration, m.NetworkProgrammingLatency, m.SyncErrors, m.LastSync,
		m.Services, m.EndpointSlices, m.Frontends, m.Backends, m.MapEntries, m.MapCapacity, m.MapFull,
		m.Verifications, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// RegisterPacketCounters exports the datapath's per-packet counters as
// hivelet_datapath_packets_total{reason}, read from the kernel at scrape.
func (m *Metrics) RegisterPacketCounters(read func() (map[string]uint64, error)) {
	m.Registry.MustRegister(&packetCounters{
		desc: prometheus.NewDesc("hivelet_datapath_packets_total",
			"Packets the TC programs translated or dropped, by reason (drop_ct_full and drop_nat_ports_exhausted are insertion failures).",
			[]string{"reason"}, nil),
		read: read,
	})
}

type packetCounters struct {
	desc *prometheus.Desc
	read func() (map[string]uint64, error)
}

func (c *packetCounters) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *packetCounters) Collect(ch chan<- prometheus.Metric) {
	vals, err := c.read()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for reason, v := range vals {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(v), reason)
	}
}
