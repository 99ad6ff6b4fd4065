package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sampleJunit = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="4">
  <testsuite name="Kubernetes e2e suite" tests="4">
    <testcase name="[SynchronizedBeforeSuite]" status="passed"></testcase>
    <testcase name="[It] [sig-node] Pods should be submitted and removed [NodeConformance] [Conformance]" status="passed" time="3.2">
      <system-err>&gt; Enter [It] passed spec chatter</system-err>
    </testcase>
    <testcase name="[It] [sig-network] Services should serve a basic endpoint from pods [Conformance]" status="failed" time="60">
      <failure message="[FAILED] failed to exec: unable | upgrade&#xA;second line">stack</failure>
      <system-err>&gt; Enter [It] failed spec log</system-err>
    </testcase>
    <testcase name="[It] [sig-network] DNS should provide DNS for services [Conformance]" status="skipped" time="0.1">
      <skipped message="skipped - Only supported for providers [gce]"></skipped>
    </testcase>
    <testcase name="[It] [sig-storage] In-tree Volumes [Driver: local] subPath [Slow]" classname="Kubernetes e2e suite" status="skipped" time="0">
        <skipped message="skipped"></skipped>
    </testcase>
  </testsuite>
</testsuites>`

func TestReport(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "hivelet"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hivelet", "junit_01.xml"), []byte(sampleJunit), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := report([]string{"-dir", dir}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	for _, want := range []string{
		"| hivelet | sig-network | 0 | 1 | 1 |",
		"| hivelet | sig-node | 1 | 0 | 0 |",
		"| **hivelet** | **all** | **1** | **1** | **1** |",
		"Services should serve a basic endpoint from pods [Conformance] — failed to exec: unable \\| upgrade\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "sig-storage") {
		t.Errorf("a spec the focus left out is counted:\n%s", md)
	}
	if raw, _ := os.ReadFile(filepath.Join(dir, "hivelet", "junit_01.xml")); strings.Contains(string(raw), "In-tree") || !strings.Contains(string(raw), "DNS should provide") {
		t.Errorf("junit not pruned to what was selected:\n%s", raw)
	} else if strings.Contains(string(raw), "passed spec chatter") || !strings.Contains(string(raw), "failed spec log") {
		t.Errorf("junit keeps the output of passed specs or drops that of failed ones:\n%s", raw)
	}
	if strings.Contains(md, "BeforeSuite") || strings.Contains(md, "| kpr |") {
		t.Errorf("suite nodes or absent kinds reported:\n%s", md)
	}
}
