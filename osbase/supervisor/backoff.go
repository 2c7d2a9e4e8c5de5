package supervisor

import "time"

const (
	defaultBackoffInitial = 500 * time.Millisecond
	defaultBackoffMax     = 30 * time.Second
)

// backoff computes restart delays for a group. It is deterministic given its
// inputs so that it can be tested without clocks or randomness.
type backoff struct {
	initial, max time.Duration
	// last is the delay before the previous restart, before jitter; zero
	// before the first failure.
	last time.Duration
}

// next returns the delay before restarting after a failure. fresh starts a
// new series at the initial delay, for failures after a long healthy period,
// which are unrelated to the ones before. jitter in [-1, 1] scales the delay
// by up to ±25%: little enough that every step of the series is still longer
// than the one before (2·0.75 > 1.25), until the cap.
func (b *backoff) next(fresh bool, jitter float64) time.Duration {
	if fresh || b.last == 0 {
		b.last = b.initial
	} else {
		b.last = min(2*b.last, b.max)
	}
	return min(time.Duration(float64(b.last)*(1+jitter/4)), b.max)
}
