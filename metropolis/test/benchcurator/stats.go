package benchcurator

import (
	"encoding/json"
	"slices"
	"time"
)

// Latency summarizes a set of durations.
type Latency struct {
	// Count is the number of durations.
	Count int
	// P50, P99 and Max are nearest-rank percentiles: the smallest duration
	// that at least that share of all durations do not exceed.
	P50, P99, Max time.Duration
}

// summarize returns the Latency of ds, which it sorts.
func summarize(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	return Latency{
		Count: len(ds),
		P50:   percentile(ds, 50),
		P99:   percentile(ds, 99),
		Max:   ds[len(ds)-1],
	}
}

// percentile returns the nearest-rank p-th percentile of sorted.
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100
	return sorted[max(rank, 1)-1]
}

// MarshalJSON writes durations as milliseconds, which scripts need not
// parse.
func (l Latency) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Count int     `json:"count"`
		P50   float64 `json:"p50_ms"`
		P99   float64 `json:"p99_ms"`
		Max   float64 `json:"max_ms"`
	}{l.Count, millis(l.P50), millis(l.P99), millis(l.Max)})
}

func millis(d time.Duration) float64 {
	return float64(d) / float64(time.Millisecond)
}
