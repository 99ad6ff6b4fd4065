package stats

import (
	"fmt"
	"io"
	"strings"

	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// WriteResourceMetrics writes s as the kubelet's /metrics/resource
// (Prometheus text format, the metric names metrics-server reads).
func WriteResourceMetrics(w io.Writer, s *statsapi.Summary) error {
	var b strings.Builder
	head := func(name, typ, help string) {
		fmt.Fprintf(&b, "# HELP %s [STABLE] %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	ms := func(t interface{ UnixMilli() int64 }) int64 { return t.UnixMilli() }
	head("node_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed by the node in core-seconds")
	if c := s.Node.CPU; c != nil && c.UsageCoreNanoSeconds != nil {
		fmt.Fprintf(&b, "node_cpu_usage_seconds_total %g %d\n", float64(*c.UsageCoreNanoSeconds)/1e9, ms(c.Time.Time))
	}
	head("node_memory_working_set_bytes", "gauge", "Current working set of the node in bytes")
	if m := s.Node.Memory; m != nil && m.WorkingSetBytes != nil {
		fmt.Fprintf(&b, "node_memory_working_set_bytes %d %d\n", *m.WorkingSetBytes, ms(m.Time.Time))
	}
	head("container_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed by the container in core-seconds")
	each := func(f func(p *statsapi.PodStats, c *statsapi.ContainerStats)) {
		for i := range s.Pods {
			for j := range s.Pods[i].Containers {
				f(&s.Pods[i], &s.Pods[i].Containers[j])
			}
		}
	}
	each(func(p *statsapi.PodStats, c *statsapi.ContainerStats) {
		if c.CPU != nil && c.CPU.UsageCoreNanoSeconds != nil {
			fmt.Fprintf(&b, "container_cpu_usage_seconds_total%s %g %d\n", labels(p, c.Name), float64(*c.CPU.UsageCoreNanoSeconds)/1e9, ms(c.CPU.Time.Time))
		}
	})
	head("container_memory_working_set_bytes", "gauge", "Current working set of the container in bytes")
	each(func(p *statsapi.PodStats, c *statsapi.ContainerStats) {
		if c.Memory != nil && c.Memory.WorkingSetBytes != nil {
			fmt.Fprintf(&b, "container_memory_working_set_bytes%s %d %d\n", labels(p, c.Name), *c.Memory.WorkingSetBytes, ms(c.Memory.Time.Time))
		}
	})
	head("container_start_time_seconds", "gauge", "Start time of the container since unix epoch in seconds")
	each(func(p *statsapi.PodStats, c *statsapi.ContainerStats) {
		fmt.Fprintf(&b, "container_start_time_seconds%s %d\n", labels(p, c.Name), c.StartTime.Unix())
	})
	head("pod_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed by the pod in core-seconds")
	for i := range s.Pods {
		if c := s.Pods[i].CPU; c != nil && c.UsageCoreNanoSeconds != nil {
			fmt.Fprintf(&b, "pod_cpu_usage_seconds_total%s %g %d\n", labels(&s.Pods[i], ""), float64(*c.UsageCoreNanoSeconds)/1e9, ms(c.Time.Time))
		}
	}
	head("pod_memory_working_set_bytes", "gauge", "Current working set of the pod in bytes")
	for i := range s.Pods {
		if m := s.Pods[i].Memory; m != nil && m.WorkingSetBytes != nil {
			fmt.Fprintf(&b, "pod_memory_working_set_bytes%s %d %d\n", labels(&s.Pods[i], ""), *m.WorkingSetBytes, ms(m.Time.Time))
		}
	}
	head("resource_scrape_error", "gauge", "1 if there was an error while getting container metrics, 0 otherwise")
	b.WriteString("resource_scrape_error 0\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// labels are a sample's labels: container (when given), namespace, pod.
func labels(p *statsapi.PodStats, container string) string {
	var parts []string
	if container != "" {
		parts = append(parts, `container="`+escape(container)+`"`)
	}
	parts = append(parts, `namespace="`+escape(p.PodRef.Namespace)+`"`, `pod="`+escape(p.PodRef.Name)+`"`)
	return "{" + strings.Join(parts, ",") + "}"
}

var escaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escape(s string) string { return escaper.Replace(s) }
