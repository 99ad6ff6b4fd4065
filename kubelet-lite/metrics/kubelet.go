package metrics

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Kubelet is the registry /metrics serves.
var Kubelet = &Registry{}

// The kubelet's metrics, named as upstream.
var (
	NodeName = Kubelet.NewGauge("kubelet_node_name", "The node's name. The count is always 1.", "node")

	RuntimeOperations       = Kubelet.NewCounter("kubelet_runtime_operations_total", "Cumulative number of runtime operations by operation type.", "operation_type")
	RuntimeOperationsErrors = Kubelet.NewCounter("kubelet_runtime_operations_errors_total", "Cumulative number of runtime operation errors by operation type.", "operation_type")
	RuntimeOperationsTime   = Kubelet.NewHistogram("kubelet_runtime_operations_duration_seconds", "Duration in seconds of runtime operations. Broken down by operation type.", RuntimeBuckets, "operation_type")

	PLEGRelist   = Kubelet.NewHistogram("kubelet_pleg_relist_duration_seconds", "Duration in seconds for relisting pods in PLEG.", RelistBuckets)
	PLEGLastSeen = Kubelet.NewGauge("kubelet_pleg_last_seen_seconds", "Timestamp in seconds when PLEG was last seen active.")

	RunningPods       = Kubelet.NewGauge("kubelet_running_pods", "Number of pods that have a running pod sandbox")
	RunningContainers = Kubelet.NewGauge("kubelet_running_containers", "Number of containers currently running", "container_state")

	StartedPods             = Kubelet.NewCounter("kubelet_started_pods_total", "Cumulative number of pods started")
	StartedPodsErrors       = Kubelet.NewCounter("kubelet_started_pods_errors_total", "Cumulative number of errors when starting pods")
	StartedContainers       = Kubelet.NewCounter("kubelet_started_containers_total", "Cumulative number of containers started", "container_type")
	StartedContainersErrors = Kubelet.NewCounter("kubelet_started_containers_errors_total", "Cumulative number of errors when starting containers", "container_type", "code")
	PodStart                = Kubelet.NewHistogram("kubelet_pod_start_duration_seconds", "Duration in seconds from kubelet seeing a pod for the first time to the pod starting to run", PodBuckets)
	PodWorker               = Kubelet.NewHistogram("kubelet_pod_worker_duration_seconds", "Duration in seconds to sync a single pod. Broken down by operation type: create, update, or sync", RuntimeBuckets, "operation_type")

	processStart = Kubelet.NewGauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.")
	processRSS   = Kubelet.NewGauge("process_resident_memory_bytes", "Resident memory size in bytes.")
	processCPU   = Kubelet.NewGauge("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.")
	processFDs   = Kubelet.NewGauge("process_open_fds", "Number of open file descriptors.")
	goroutines   = Kubelet.NewGauge("go_goroutines", "Number of goroutines that currently exist.")
	heapAlloc    = Kubelet.NewGauge("go_memstats_heap_alloc_bytes", "Number of heap bytes allocated and still in use.")
)

var started = time.Now()

func init() {
	processStart.Set(float64(started.UnixNano()) / 1e9)
	Kubelet.OnCollect(collectProcess)
}

// collectProcess reads the process's own figures from /proc/self.
func collectProcess() {
	goroutines.Set(float64(runtime.NumGoroutine()))
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heapAlloc.Set(float64(ms.HeapAlloc))
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		processFDs.Set(float64(len(fds)))
	}
	raw, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return
	}
	// Fields after the command (which may hold spaces) start at state.
	_, rest, ok := strings.Cut(string(raw), ") ")
	if !ok {
		return
	}
	f := strings.Fields(rest)
	if len(f) < 22 {
		return
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	rss, _ := strconv.ParseFloat(f[21], 64)
	const ticks = 100 // USER_HZ on every Linux the kubelet runs on
	processCPU.Set((utime + stime) / ticks)
	processRSS.Set(rss * float64(os.Getpagesize()))
}
