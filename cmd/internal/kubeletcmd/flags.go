package kubeletcmd

import (
	"strings"

	"github.com/hivelet/hivelet/kubelet-lite/eviction"
)

// evictionFlag is --eviction-hard: the thresholds, upstream's defaults
// until set; a value given replaces them all, as upstream's flag does.
type evictionFlag struct{ v *[]eviction.Threshold }

func (f *evictionFlag) String() string {
	if f.v == nil {
		return ""
	}
	parts := make([]string, len(*f.v))
	for i, t := range *f.v {
		parts[i] = t.String()
	}
	return strings.Join(parts, ",")
}

func (f *evictionFlag) Set(s string) error {
	ts, err := eviction.ParseFlag(s)
	if err != nil {
		return err
	}
	*f.v = ts
	return nil
}

func (f *evictionFlag) Type() string { return "thresholds" }

// defaultEviction is eviction.DefaultHard parsed.
func defaultEviction() []eviction.Threshold {
	ts, err := eviction.ParseFlag(eviction.DefaultHard)
	if err != nil {
		panic(err) // a constant
	}
	return ts
}
