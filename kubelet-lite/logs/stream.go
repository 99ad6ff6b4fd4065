package logs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Options are the kubelet API's log query parameters.
type Options struct {
	Follow     bool
	Timestamps bool
	TailLines  int64 // < 0: all
	LimitBytes int64 // <= 0: no limit
	Since      time.Time
}

// FollowPoll is how often a followed log is checked for new lines.
var FollowPoll = 100 * time.Millisecond

// Stream writes the log at path to w as `kubectl logs` wants it: the
// text of each entry (a newline after full lines), optionally prefixed
// by its time, from the tailLines-th entry before the end, none older
// than Since, at most LimitBytes. Memory stays bounded whatever the file
// size: the tail is found by reading backwards. With Follow it then
// waits for new entries, reopening the file when rotation replaced it,
// until ctx ends or running reports the container gone and nothing is
// left to read.
func Stream(ctx context.Context, w io.Writer, path string, o Options, running func() bool) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer func() { f.Close() }()
	if o.TailLines >= 0 {
		if _, err := f.Seek(tailStart(f, o.TailLines), io.SeekStart); err != nil {
			return fmt.Errorf("seek log: %w", err)
		}
	}
	lw := &limitedWriter{w: w, left: o.LimitBytes, limited: o.LimitBytes > 0}
	r := bufio.NewReaderSize(f, 64<<10)
	var pending []byte // an entry read without its newline yet (being written)
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			pending = append(pending, line...)
			continue
		}
		if len(line) > 0 && err == nil {
			full := line
			if len(pending) > 0 {
				full = append(pending, line...)
				pending = pending[:0]
			}
			if werr := writeEntry(lw, full, o); werr != nil {
				if errors.Is(werr, errLimit) {
					return nil
				}
				return werr
			}
			continue
		}
		pending = append(pending, line...)
		if err != io.EOF {
			return fmt.Errorf("read log: %w", err)
		}
		if !o.Follow {
			return nil
		}
		if fl, ok := w.(interface{ Flush() }); ok {
			fl.Flush()
		}
		if rotated(f, path) {
			nf, err := os.Open(path)
			if err == nil {
				f.Close()
				f, r = nf, bufio.NewReaderSize(nf, 64<<10)
				pending = pending[:0]
				continue
			}
		}
		if running != nil && !running() {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(FollowPoll):
		}
	}
}

var errLimit = errors.New("limitBytes reached")

type limitedWriter struct {
	w       io.Writer
	left    int64
	limited bool
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if !l.limited {
		return l.w.Write(p)
	}
	if l.left <= 0 {
		return 0, errLimit
	}
	if int64(len(p)) > l.left {
		n, err := l.w.Write(p[:l.left])
		l.left = 0
		if err == nil {
			err = errLimit
		}
		return n, err
	}
	l.left -= int64(len(p))
	return l.w.Write(p)
}

// writeEntry writes one CRI entry "<time> <stream> <P|F> <text>\n".
func writeEntry(w io.Writer, line []byte, o Options) error {
	line = bytes.TrimSuffix(line, []byte("\n"))
	ts, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok {
		return nil
	}
	_, rest, _ = bytes.Cut(rest, []byte(" ")) // the stream
	tag, text, _ := bytes.Cut(rest, []byte(" "))
	if !o.Since.IsZero() {
		if t, err := time.Parse(time.RFC3339Nano, string(ts)); err == nil && t.Before(o.Since) {
			return nil
		}
	}
	var buf bytes.Buffer
	if o.Timestamps {
		buf.Write(ts)
		buf.WriteByte(' ')
	}
	buf.Write(text)
	if string(tag) != "P" {
		buf.WriteByte('\n')
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// tailStart is the offset of the n-th entry from the end of f, found by
// reading backwards a block at a time.
func tailStart(f *os.File, n int64) int64 {
	st, err := f.Stat()
	if err != nil {
		return 0
	}
	size := st.Size()
	if n == 0 {
		return size
	}
	const block = 32 << 10
	buf := make([]byte, block)
	var newlines int64
	end := size
	// A file ends with a newline: the last one closes the last entry.
	for off := size; off > 0; {
		start := max(off-block, 0)
		chunk := buf[:off-start]
		if _, err := f.ReadAt(chunk, start); err != nil && !errors.Is(err, io.EOF) {
			return 0
		}
		for i := len(chunk) - 1; i >= 0; i-- {
			if chunk[i] != '\n' || start+int64(i) == end-1 {
				continue
			}
			newlines++
			if newlines == n {
				return start + int64(i) + 1
			}
		}
		off = start
	}
	return 0
}

// rotated reports that path is no longer the file f has open.
func rotated(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Stat(path)
	return err1 == nil && err2 == nil && !os.SameFile(a, b)
}
