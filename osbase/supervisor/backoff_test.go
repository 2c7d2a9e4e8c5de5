package supervisor

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBackoffSeries(t *testing.T) {
	b := backoff{initial: 10 * time.Millisecond, max: 100 * time.Millisecond}
	want := []time.Duration{10, 20, 40, 80, 100, 100}
	for i, w := range want {
		if got := b.next(false, 0); got != w*time.Millisecond {
			t.Errorf("failure %d: delay %v, want %v", i, got, w*time.Millisecond)
		}
	}
	if got := b.next(true, 0); got != 10*time.Millisecond {
		t.Errorf("fresh failure: delay %v, want the initial delay", got)
	}
	if got := b.next(false, 0); got != 20*time.Millisecond {
		t.Errorf("failure after fresh one: delay %v, want 20ms", got)
	}
}

func TestBackoffJitter(t *testing.T) {
	b := backoff{initial: 100 * time.Millisecond, max: time.Second}
	if got := b.next(false, -1); got != 75*time.Millisecond {
		t.Errorf("lowest jitter: %v, want 75ms", got)
	}
	if got := b.next(false, 1); got != 250*time.Millisecond {
		t.Errorf("highest jitter: %v, want 250ms", got)
	}
	// Jitter never grows the delay beyond the maximum.
	b.last = time.Second
	if got := b.next(false, 1); got != time.Second {
		t.Errorf("jitter at the cap: %v, want 1s", got)
	}
	// Whatever the jitter, every delay of a series is longer than the one
	// before, until the cap.
	for k := range 10 {
		b := backoff{initial: 100 * time.Millisecond, max: time.Hour, last: 100 * time.Millisecond << k}
		longest := b.next(false, 1)
		if shortest := b.next(false, -1); shortest <= longest {
			t.Errorf("step %d: delay %v with lowest jitter not above previous %v with highest", k, shortest, longest)
		}
	}
}

// TestBackoffGrows checks that restarts of a runnable which keeps failing
// come further and further apart. Only lower bounds are checked, as delays
// can only be stretched by a busy machine.
func TestBackoffGrows(t *testing.T) {
	const initial = 20 * time.Millisecond
	starts := make(chan time.Time, 10)
	startTree(t, func(ctx context.Context) error {
		return runChild(ctx, "failing", func(ctx context.Context) error {
			select {
			case starts <- time.Now():
				return errors.New("failing")
			default:
				return blockHealthy(ctx)
			}
		})
	}, WithBackoff(initial, time.Hour))

	var times []time.Time
	for range 6 {
		times = append(times, recv(t, starts))
	}
	minDelay := initial * 3 / 4
	for i := 1; i < len(times); i++ {
		if d := times[i].Sub(times[i-1]); d < minDelay {
			t.Errorf("restart %d after %v, want at least %v", i, d, minDelay)
		}
		minDelay *= 2
	}
}

// TestBackoffReset checks that a runnable which was healthy for a while
// before failing is restarted after the initial delay again.
func TestBackoffReset(t *testing.T) {
	const (
		initial  = 5 * time.Millisecond
		maxDelay = 400 * time.Millisecond
	)
	var runs int
	fails := make(chan time.Time, 1)
	restarted := make(chan time.Time, 1)
	startTree(t, func(ctx context.Context) error {
		return runChild(ctx, "flaky", func(ctx context.Context) error {
			runs++
			switch {
			// Builds the delay up to its maximum: 5+10+...+320ms.
			case runs <= 7:
				return errors.New("early failure")
			case runs == 8:
				Signal(ctx, SignalHealthy)
				select {
				case <-time.After(maxDelay + 50*time.Millisecond):
				case <-ctx.Done():
					return ctx.Err()
				}
				fails <- time.Now()
				return errors.New("failure after being healthy")
			case runs == 9:
				restarted <- time.Now()
			}
			return blockHealthy(ctx)
		})
	}, WithBackoff(initial, maxDelay))

	failed := recv(t, fails)
	// Without the reset, the delay would be at least 3/4 of maxDelay.
	if d := recv(t, restarted).Sub(failed); d > maxDelay/3 {
		t.Errorf("restart after healthy period took %v, want about %v", d, initial)
	}
}
