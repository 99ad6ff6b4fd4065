package main

import (
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// junitCase is one <testcase> of a ginkgo junit report.
type junitCase struct {
	Name    string `xml:"name,attr"`
	Status  string `xml:"status,attr"`
	Time    string `xml:"time,attr"`
	Failure *struct {
		Message string `xml:"message,attr"`
		Text    string `xml:",chardata"`
	} `xml:"failure"`
	Error *struct {
		Message string `xml:"message,attr"`
	} `xml:"error"`
	Skipped *struct {
		Message string `xml:"message,attr"`
	} `xml:"skipped"`
}

type junitFile struct {
	Suites []struct {
		Cases []junitCase `xml:"testcase"`
	} `xml:"testsuite"`
}

// outcome is one test's result.
type outcome struct {
	sig, name, status, cause string
}

var sigRe = regexp.MustCompile(`^\[(sig-[a-z-]+)\]`)

// readJunit reads the test cases of every junit_*.xml under dir; the
// suite's own nodes ([BeforeSuite] and the like) are not tests.
func readJunit(dir string) ([]outcome, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "junit*.xml"))
	if err != nil {
		return nil, err
	}
	var out []outcome
	for _, p := range paths {
		raw, err := prune(p)
		if err != nil {
			return nil, err
		}
		var f junitFile
		if err := xml.Unmarshal(raw, &f); err != nil {
			// ginkgo writes <testsuites>; a bare <testsuite> is read too.
			var one struct {
				Cases []junitCase `xml:"testcase"`
			}
			if err2 := xml.Unmarshal(raw, &one); err2 != nil {
				return nil, fmt.Errorf("read %s: %w", p, err)
			}
			f.Suites = append(f.Suites, struct {
				Cases []junitCase `xml:"testcase"`
			}{one.Cases})
		}
		for _, s := range f.Suites {
			for _, c := range s.Cases {
				if o, ok := classify(c); ok {
					out = append(out, o)
				}
			}
		}
	}
	return out, nil
}

// unselected is a <testcase> ginkgo lists although the focus left it
// out: several thousand per run, most of a junit file's megabytes.
var unselected = regexp.MustCompile(`(?s)\s*<testcase [^>]*status="skipped" time="0">\s*<skipped message="skipped"></skipped>\s*</testcase>`)

// passedLog is the captured output of a spec that passed: kept by
// ginkgo for every spec, it is what makes a run's junit megabytes,
// and nobody reads it when the spec passed.
var passedLog = regexp.MustCompile(`(?s)(<testcase [^>]*status="passed"[^>]*>)\s*<system-err>.*?</system-err>`)

// prune rewrites the junit file at p without the specs the focus left
// out and without the output of specs that passed, so that what is
// committed is what ran and what failed in detail, and returns its text.
func prune(p string) ([]byte, error) {
	raw, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	pruned := passedLog.ReplaceAll(unselected.ReplaceAll(raw, nil), []byte("$1"))
	if len(pruned) == len(raw) {
		return raw, nil
	}
	return pruned, os.WriteFile(p, pruned, 0o644)
}

func classify(c junitCase) (outcome, bool) {
	// ginkgo prefixes the node type: "[It] [sig-node] ...".
	name := strings.TrimSpace(strings.TrimPrefix(c.Name, "[It]"))
	m := sigRe.FindStringSubmatch(name)
	if m == nil {
		return outcome{}, false
	}
	o := outcome{sig: m[1], name: name, status: "passed"}
	switch {
	case c.Failure != nil || c.Error != nil || c.Status == "failed" || c.Status == "timedout" || c.Status == "panicked":
		o.status = "failed"
		switch {
		case c.Failure != nil && c.Failure.Message != "":
			o.cause = c.Failure.Message
		case c.Failure != nil:
			o.cause = c.Failure.Text
		case c.Error != nil:
			o.cause = c.Error.Message
		default:
			o.cause = c.Status
		}
	case c.Skipped != nil && c.Skipped.Message == "skipped":
		return outcome{}, false // not selected by the focus: ginkgo's bare "skipped"
	case c.Skipped != nil || c.Status == "skipped" || c.Status == "pending":
		o.status = "skipped"
	}
	o.cause = oneLine(o.cause)
	return o, true
}

// oneLine keeps the first meaningful line of a failure, short enough for
// a table.
func oneLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "[FAILED]") && len(l) == len("[FAILED]") {
			continue
		}
		l = strings.TrimSpace(strings.TrimPrefix(l, "[FAILED]"))
		if len(l) > 200 {
			l = l[:200] + "…"
		}
		return strings.ReplaceAll(l, "|", `\|`)
	}
	return ""
}

// report writes results.md from every node kind's junit files under dir
// (dir/hivelet, dir/kpr, dir/upstream).
func report(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	dir := fs.String("dir", "test/results/conformance", "results directory: one subdirectory of junit files per node kind")
	out := fs.String("o", "", "markdown file to write (default DIR/results.md)")
	_ = fs.Parse(args)
	if *out == "" {
		*out = filepath.Join(*dir, "results.md")
	}
	kinds := map[string][]outcome{}
	runs := map[string]string{}
	for _, k := range []string{"hivelet", "kpr", "upstream"} {
		runs[k] = strings.TrimSpace(readNote(filepath.Join(*dir, k, "run.txt")))
		o, err := readJunit(filepath.Join(*dir, k))
		if err != nil {
			return err
		}
		if len(o) > 0 {
			kinds[k] = o
		}
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	defer f.Close()
	return writeReport(f, kinds, runs, readNote(filepath.Join(*dir, "NOTE.md")))
}

func readNote(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

var kindText = map[string]string{
	"hivelet":  "hivelet: hivelet-kubelet, hivelet agent (kube-proxy replacement), hivelet-cni",
	"kpr":      "kpr: upstream kubelet, hivelet agent (kube-proxy replacement), hivelet-cni",
	"upstream": "upstream: upstream kubelet, kube-proxy, reference bridge CNI (baseline)",
}

func writeReport(w io.Writer, kinds map[string][]outcome, runs map[string]string, note string) error {
	var b strings.Builder
	b.WriteString("# Kubernetes conformance on hack/cluster.sh\n\n")
	b.WriteString("Written by `make conformance` (test/clusterctl report) from the junit files beside it.\n\n")
	if note != "" {
		b.WriteString(strings.TrimSpace(note) + "\n\n")
	}
	b.WriteString("| node | SIG | passed | failed | skipped |\n|---|---|---:|---:|---:|\n")
	order := []string{"hivelet", "kpr", "upstream"}
	for _, k := range order {
		sigs := map[string]*[3]int{}
		for _, o := range kinds[k] {
			c := sigs[o.sig]
			if c == nil {
				c = &[3]int{}
				sigs[o.sig] = c
			}
			c[map[string]int{"passed": 0, "failed": 1, "skipped": 2}[o.status]]++
		}
		var total [3]int
		for _, s := range slices.Sorted(maps.Keys(sigs)) {
			c := sigs[s]
			fmt.Fprintf(&b, "| %s | %s | %d | %d | %d |\n", k, s, c[0], c[1], c[2])
			for i := range total {
				total[i] += c[i]
			}
		}
		if len(sigs) > 0 {
			fmt.Fprintf(&b, "| **%s** | **all** | **%d** | **%d** | **%d** |\n", k, total[0], total[1], total[2])
		}
	}
	for _, k := range order {
		if len(kinds[k]) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n## %s\n\n", kindText[k])
		if runs[k] != "" {
			fmt.Fprintf(&b, "Run: %s\n\n", runs[k])
		}
		var failed []outcome
		for _, o := range kinds[k] {
			if o.status == "failed" {
				failed = append(failed, o)
			}
		}
		if len(failed) == 0 {
			b.WriteString("No failures.\n")
			continue
		}
		slices.SortFunc(failed, func(a, b outcome) int { return strings.Compare(a.name, b.name) })
		for _, o := range failed {
			fmt.Fprintf(&b, "- %s — %s\n", o.name, o.cause)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
