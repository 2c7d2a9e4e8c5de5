// Package measure holds what the project's benchmarks share to report
// repeated timings: medians, durations rounded for reading, and the host's
// load average, which tells a reader how much other work the figures
// competed with.
package measure

import (
	"cmp"
	"os"
	"slices"
	"strings"
	"time"
)

// Median returns the middle value of values (the upper one of the two
// middle values of an even count) without reordering values. It panics if
// values is empty.
func Median[T cmp.Ordered](values []T) T {
	s := slices.Clone(values)
	slices.Sort(s)
	return s[len(s)/2]
}

// Round rounds d to a tenth of a second, the precision benchmark reports
// use for boot and launch times.
func Round(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }

// RoundAll rounds every duration of ds as Round does and lists them.
func RoundAll(ds []time.Duration) string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = Round(d)
	}
	return strings.Join(out, ", ")
}

// LoadAverage returns the host's one, five and fifteen minute load
// averages as /proc/loadavg has them, or "unknown".
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return loadFields(string(b))
}

func loadFields(loadavg string) string {
	f := strings.Fields(loadavg)
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
