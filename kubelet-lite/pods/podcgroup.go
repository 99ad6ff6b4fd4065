package pods

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	resourcehelper "k8s.io/component-helpers/resource"
)

// CFS and shares bounds, the upstream kubelet's.
const (
	minShares     = 2
	maxShares     = 262144
	sharesPerCPU  = 1024
	cfsPeriod     = 100000 // µs
	minQuota      = 1000   // µs
	noLimit       = -1
	cgroupV2Probe = "cgroup.controllers" // present at the root of a unified-only host
)

// podCgroupConfig is what the pod-level cgroup gets, as upstream's
// ResourceConfigForPod: CPU shares from the requests; a CFS quota and a
// memory limit only when every container sets that limit (one container
// without would be capped by the others' sum).
type podCgroupConfig struct {
	shares      uint64
	quota       int64 // µs per cfsPeriod; noLimit
	memoryLimit int64 // bytes; noLimit
}

func podCgroupConfigFor(pod *corev1.Pod) podCgroupConfig {
	cfg := podCgroupConfig{shares: minShares, quota: noLimit, memoryLimit: noLimit}
	if QOSClass(pod) == corev1.PodQOSBestEffort {
		return cfg
	}
	req := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	cpu := req[corev1.ResourceCPU]
	cfg.shares = milliToShares(cpu.MilliValue())
	cpuLimited, memLimited := true, true
	for _, c := range allContainers(pod) {
		_, hasCPU := c.Resources.Limits[corev1.ResourceCPU]
		_, hasMem := c.Resources.Limits[corev1.ResourceMemory]
		cpuLimited, memLimited = cpuLimited && hasCPU, memLimited && hasMem
	}
	lim := resourcehelper.PodLimits(pod, resourcehelper.PodResourcesOptions{})
	if q, ok := lim[corev1.ResourceCPU]; ok && cpuLimited {
		cfg.quota = max(q.MilliValue()*cfsPeriod/1000, minQuota)
	}
	if q, ok := lim[corev1.ResourceMemory]; ok && memLimited {
		cfg.memoryLimit = q.Value()
	}
	return cfg
}

func milliToShares(milli int64) uint64 {
	return uint64(min(max(milli*sharesPerCPU/1000, minShares), maxShares))
}

// sharesToWeight is cgroup v2's cpu.weight for v1 shares, the
// conversion runc and the kubelet use.
func sharesToWeight(shares uint64) uint64 { return 1 + ((shares-minShares)*9999)/(maxShares-minShares) }

// applyPodCgroup creates the pod's cgroup and sets its limits before the
// sandbox starts in it: the pod as a whole gets its requests' CPU share
// and, when every container is limited, its limits' CPU quota and
// memory. With the systemd driver the slice is systemd's to create; the
// containers' own limits still hold.
func (m *Manager) applyPodCgroup(pod *corev1.Pod) error {
	if m.cfg.CgroupDriver == DriverSystemd {
		return nil
	}
	if err := m.applyQOSCgroups(pod); err != nil {
		m.log.Warn("Setting the QoS cgroups failed", "error", err)
	}
	return applyCgroup(m.naming().dir(podCgroupNames(pod)), podCgroupConfigFor(pod))
}

// applyCgroup creates the cgroup rel (below every hierarchy's mount
// point) and sets cfg on it, v1 or v2 as the host has.
func applyCgroup(rel string, cfg podCgroupConfig) error {
	if _, err := os.Stat(filepath.Join(cgroupMounts, cgroupV2Probe)); err == nil {
		return applyV2(filepath.Join(cgroupMounts, rel), cfg)
	}
	return applyV1(rel, cfg)
}

func applyV1(rel string, cfg podCgroupConfig) error {
	quota := strconv.FormatInt(cfg.quota, 10)
	mem := strconv.FormatInt(cfg.memoryLimit, 10)
	if cfg.memoryLimit == noLimit {
		mem = "-1"
	}
	var errs []error
	for _, w := range []struct{ controller, file, value string }{
		{"cpu", "cpu.shares", strconv.FormatUint(cfg.shares, 10)},
		{"cpu", "cpu.cfs_period_us", strconv.Itoa(cfsPeriod)},
		{"cpu", "cpu.cfs_quota_us", quota},
		{"memory", "memory.limit_in_bytes", mem},
	} {
		dir := filepath.Join(v1Hierarchy(w.controller), rel)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			errs = append(errs, fmt.Errorf("create pod cgroup: %w", err))
			continue
		}
		if err := writeCgroupFile(dir, w.file, w.value); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// v1Hierarchy is where controller's v1 hierarchy is mounted: its own
// directory, or a joint one such as cpu,cpuacct.
func v1Hierarchy(controller string) string {
	if fi, err := os.Stat(filepath.Join(cgroupMounts, controller)); err == nil && fi.IsDir() {
		return filepath.Join(cgroupMounts, controller)
	}
	ents, _ := os.ReadDir(cgroupMounts)
	for _, e := range ents {
		for part := range strings.SplitSeq(e.Name(), ",") {
			if part == controller {
				return filepath.Join(cgroupMounts, e.Name())
			}
		}
	}
	return filepath.Join(cgroupMounts, controller)
}

// applyV2 creates dir with the cpu and memory controllers enabled on
// the way down (what runc does for container cgroups), then writes the
// limits.
func applyV2(dir string, cfg podCgroupConfig) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create pod cgroup: %w", err)
	}
	rel, err := filepath.Rel(cgroupMounts, dir)
	if err != nil {
		return err
	}
	cur := cgroupMounts
	for part := range strings.SplitSeq(rel, string(filepath.Separator)) {
		// Enabling in the parent lets the child have the controllers;
		// already enabled is not an error.
		_ = writeCgroupFile(cur, "cgroup.subtree_control", "+cpu +memory")
		cur = filepath.Join(cur, part)
	}
	quota := "max"
	if cfg.quota != noLimit {
		quota = strconv.FormatInt(cfg.quota, 10)
	}
	mem := "max"
	if cfg.memoryLimit != noLimit {
		mem = strconv.FormatInt(cfg.memoryLimit, 10)
	}
	return errors.Join(
		writeCgroupFile(dir, "cpu.weight", strconv.FormatUint(sharesToWeight(cfg.shares), 10)),
		writeCgroupFile(dir, "cpu.max", quota+" "+strconv.Itoa(cfsPeriod)),
		writeCgroupFile(dir, "memory.max", mem),
	)
}

func writeCgroupFile(dir, name, value string) error {
	if err := os.WriteFile(filepath.Join(dir, name), []byte(value), 0o644); err != nil {
		return fmt.Errorf("set pod cgroup %s: %w", name, err)
	}
	return nil
}
