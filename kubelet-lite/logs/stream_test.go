package logs

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const sample = "2026-12-04T10:00:00.000000000Z stdout F one\n" +
	"2026-12-04T10:00:01.000000000Z stderr P tw\n" +
	"2026-12-04T10:00:01.500000000Z stderr F o\n" +
	"2026-12-04T10:00:02.000000000Z stdout F three\n"

func logFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "0.log")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStream(t *testing.T) {
	p := logFile(t, sample)
	for name, tc := range map[string]struct {
		o    Options
		want string
	}{
		"all":        {Options{TailLines: -1}, "one\ntwo\nthree\n"},
		"tail 1":     {Options{TailLines: 1}, "three\n"},
		"tail 2":     {Options{TailLines: 2}, "o\nthree\n"}, // entries, as upstream counts them
		"tail 0":     {Options{TailLines: 0}, ""},
		"tail 99":    {Options{TailLines: 99}, "one\ntwo\nthree\n"},
		"since":      {Options{TailLines: -1, Since: time.Date(2026, 12, 4, 10, 0, 1, 200, time.UTC)}, "o\nthree\n"},
		"timestamps": {Options{TailLines: 1, Timestamps: true}, "2026-12-04T10:00:02.000000000Z three\n"},
		"limit":      {Options{TailLines: -1, LimitBytes: 6}, "one\ntw"},
	} {
		var out bytes.Buffer
		if err := Stream(context.Background(), &out, p, tc.o, nil); err != nil || out.String() != tc.want {
			t.Errorf("%s: %q %v, want %q", name, out.String(), err, tc.want)
		}
	}
	if got, err := Tail(p, 2, 4); err != nil || got != "ree\n" {
		t.Errorf("Tail(2 lines, 4 bytes) = %q %v, want %q", got, err, "ree\n")
	}
}

// TestTailEndsAsTheContainerDid checks a termination message taken from
// the log (FallbackToLogsOnError): a last line the container wrote
// without a newline (`echo -n DONE`, tagged P at EOF by the runtime) is
// kept, without a newline, and partial lines join.
func TestTailEndsAsTheContainerDid(t *testing.T) {
	p := filepath.Join(t.TempDir(), "0.log")
	log := "2026-12-04T10:00:00.000000000Z stdout P hal\n" +
		"2026-12-04T10:00:00.100000000Z stdout F f\n" +
		"2026-12-04T10:00:01.000000000Z stderr P DONE\n"
	if err := os.WriteFile(p, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		lines, bytes int
		want         string
	}{{80, 2048, "half\nDONE"}, {1, 2048, "DONE"}, {80, 3, "ONE"}} {
		if got, err := Tail(p, tc.lines, tc.bytes); err != nil || got != tc.want {
			t.Errorf("Tail(%d, %d) = %q %v, want %q", tc.lines, tc.bytes, got, err, tc.want)
		}
	}
}

// syncBuffer is written by Stream and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestStreamFollowsAcrossRotation(t *testing.T) {
	defer func(old time.Duration) { FollowPoll = old }(FollowPoll)
	FollowPoll = 5 * time.Millisecond
	p := logFile(t, "2026-12-04T10:00:00Z stdout F first\n")
	var out syncBuffer
	var stopped sync.WaitGroup
	running := true
	var mu sync.Mutex
	stopped.Add(1)
	go func() {
		defer stopped.Done()
		_ = Stream(context.Background(), &out, p, Options{TailLines: -1, Follow: true}, func() bool { mu.Lock(); defer mu.Unlock(); return running })
	}()
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for out.String() != want {
			if time.Now().After(deadline) {
				t.Fatalf("followed %q, want %q", out.String(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("first\n")
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("2026-12-04T10:00:01Z stdout F sec")
	waitFor("first\n") // half an entry is not written yet
	f.WriteString("ond\n")
	f.Close()
	waitFor("first\nsecond\n")
	// Rotation: the file is renamed and a new one takes its name.
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("2026-12-04T10:00:02Z stdout F third\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor("first\nsecond\nthird\n")
	mu.Lock()
	running = false
	mu.Unlock()
	stopped.Wait() // the container is gone: following ends
	if strings.Count(out.String(), "\n") != 3 {
		t.Errorf("followed %q", out.String())
	}
}
