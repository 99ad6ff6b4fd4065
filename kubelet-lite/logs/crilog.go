// Package logs reads the container log files the runtime writes in the
// CRI format, for the kubelet API (`kubectl logs`) and for termination
// messages taken from a container's last lines.
package logs

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// Read reads a CRI log file ("<time> <stream> <P|F> <text>" per line)
// back into the lines the container wrote, partial ones joined. A line
// the container ended keeps its "\n"; its last output, if it ended
// without one, comes last without it (the runtime tags it P at EOF), as
// upstream's reader gives them back.
func Read(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer f.Close()
	var out []string
	var partial strings.Builder
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.SplitN(sc.Text(), " ", 4)
		if len(fields) < 3 {
			continue
		}
		text := ""
		if len(fields) == 4 {
			text = fields[3]
		}
		partial.WriteString(text)
		if fields[2] == "F" {
			partial.WriteByte('\n')
			out = append(out, partial.String())
			partial.Reset()
		}
	}
	if partial.Len() > 0 {
		out = append(out, partial.String())
	}
	return out, sc.Err()
}

// Tail is the end of a log as one text: at most lines lines and bytes
// bytes (the later ones kept).
func Tail(path string, lines, bytes int) (string, error) {
	all, err := Read(path)
	if err != nil {
		return "", err
	}
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	s := strings.Join(all, "")
	if len(s) > bytes {
		s = s[len(s)-bytes:]
	}
	return s, nil
}
