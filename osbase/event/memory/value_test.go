package memory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"metropolis.dev/osbase/event"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTimeout bounds every wait for something that should happen. It is
// generous because tests run under -race on small, busy machines.
const testTimeout = 30 * time.Second

// blockedFor is how long a Get that must block is given to wrongly return.
const blockedFor = 50 * time.Millisecond

var _ event.Value[int] = &Value[int]{}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// mustGet calls Get and fails the test on error.
func mustGet[T any](t *testing.T, w event.Watcher[T], opts ...event.GetOption[T]) T {
	t.Helper()
	val, err := w.Get(testContext(t), opts...)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return val
}

// mustBlock checks that Get does not return a value for a while.
func mustBlock[T any](t *testing.T, w event.Watcher[T], opts ...event.GetOption[T]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), blockedFor)
	defer cancel()
	if val, err := w.Get(ctx, opts...); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get returned (%v, %v), want it to block", val, err)
	}
}

func TestZeroValueBlocksUntilSet(t *testing.T) {
	var v Value[string]
	w := v.Watch()
	defer w.Close()

	mustBlock(t, w)
	if _, err := w.Get(testContext(t), event.BacklogOnly[string]()); !errors.Is(err, event.ErrBacklogDone) {
		t.Fatalf("BacklogOnly Get on unset value: got %v, want ErrBacklogDone", err)
	}

	got := make(chan string)
	go func() {
		val, err := w.Get(testContext(t))
		if err != nil {
			t.Errorf("Get: %v", err)
		}
		got <- val
	}()
	v.Set("hello")
	if val := <-got; val != "hello" {
		t.Fatalf("Get returned %q, want hello", val)
	}
}

func TestGetReturnsLatestUnseen(t *testing.T) {
	for _, tc := range []struct {
		name string
		// sets are published in batches; each batch is followed by a Get
		// that must return want.
		batches [][]int
		want    []int
	}{
		{"one value per Get", [][]int{{1}, {2}, {3}}, []int{1, 2, 3}},
		{"intermediate values skipped", [][]int{{1, 2, 3}, {4, 5}}, []int{3, 5}},
		{"same value set again is new", [][]int{{7}, {7}}, []int{7, 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v Value[int]
			w := v.Watch()
			defer w.Close()
			for i, batch := range tc.batches {
				for _, val := range batch {
					v.Set(val)
				}
				if got := mustGet(t, w); got != tc.want[i] {
					t.Fatalf("Get after batch %d returned %d, want %d", i, got, tc.want[i])
				}
			}
			mustBlock(t, w)
		})
	}
}

func TestLateWatcherGetsCurrentValue(t *testing.T) {
	var v Value[int]
	early := v.Watch()
	defer early.Close()
	v.Set(1)
	v.Set(2)

	late := v.Watch()
	defer late.Close()
	if got := mustGet(t, late); got != 2 {
		t.Fatalf("late watcher got %d, want 2", got)
	}
	mustBlock(t, late)
	// Watchers are independent: the late one did not consume anything for
	// the early one.
	if got := mustGet(t, early); got != 2 {
		t.Fatalf("early watcher got %d, want 2", got)
	}
}

func TestFilter(t *testing.T) {
	even := event.Filter(func(i int) bool { return i%2 == 0 })
	small := event.Filter(func(i int) bool { return i < 10 })
	for _, tc := range []struct {
		name string
		opts []event.GetOption[int]
		sets []int
		want int
	}{
		{"matching value returned", []event.GetOption[int]{even}, []int{4}, 4},
		{"non-matching values skipped", []event.GetOption[int]{even}, []int{1, 3, 5, 6}, 6},
		{"all filters must match", []event.GetOption[int]{even, small}, []int{12, 3, 8}, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v Value[int]
			w := v.Watch()
			defer w.Close()
			got := make(chan int)
			go func() {
				val, err := w.Get(testContext(t), tc.opts...)
				if err != nil {
					t.Errorf("Get: %v", err)
				}
				got <- val
			}()
			// Set one value at a time, checking that Get keeps waiting
			// through the ones that must be skipped.
			for i, val := range tc.sets {
				v.Set(val)
				if i == len(tc.sets)-1 {
					break
				}
				select {
				case val := <-got:
					t.Fatalf("Get returned %d before the matching value was set", val)
				case <-time.After(blockedFor):
				}
			}
			if val := <-got; val != tc.want {
				t.Fatalf("Get returned %d, want %d", val, tc.want)
			}
		})
	}
}

func TestBacklogOnly(t *testing.T) {
	odd := event.Filter(func(i int) bool { return i%2 == 1 })
	for _, tc := range []struct {
		name  string
		set   []int
		seen  bool
		extra []event.GetOption[int]
		want  int
		err   error
	}{
		{name: "unset", err: event.ErrBacklogDone},
		{name: "unseen value", set: []int{1, 2}, want: 2},
		{name: "seen value", set: []int{1}, seen: true, err: event.ErrBacklogDone},
		{name: "value rejected by filter", set: []int{2}, extra: []event.GetOption[int]{odd}, err: event.ErrBacklogDone},
		{name: "value accepted by filter", set: []int{3}, extra: []event.GetOption[int]{odd}, want: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v Value[int]
			w := v.Watch()
			defer w.Close()
			for _, val := range tc.set {
				v.Set(val)
			}
			if tc.seen {
				mustGet(t, w)
			}
			opts := append([]event.GetOption[int]{event.BacklogOnly[int]()}, tc.extra...)
			got, err := w.Get(testContext(t), opts...)
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Fatalf("Get returned (%d, %v), want (%d, %v)", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestContextEndsGet(t *testing.T) {
	var v Value[int]
	w := v.Watch()
	defer w.Close()

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() {
		_, err := w.Get(ctx)
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Get returned %v, want context.Canceled", err)
	}

	// The watcher stays usable.
	v.Set(1)
	if got := mustGet(t, w); got != 1 {
		t.Fatalf("Get after cancellation returned %d, want 1", got)
	}
}

func TestClose(t *testing.T) {
	var v Value[int]
	w := v.Watch()

	errc := make(chan error)
	go func() {
		_, err := w.Get(testContext(t))
		errc <- err
	}()
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-errc; !errors.Is(err, event.ErrWatcherClosed) {
		t.Fatalf("blocked Get returned %v after Close, want ErrWatcherClosed", err)
	}

	v.Set(1)
	if _, err := w.Get(testContext(t)); !errors.Is(err, event.ErrWatcherClosed) {
		t.Fatalf("Get after Close returned %v, want ErrWatcherClosed", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestSetNeverWaitsForWatchers publishes many values while watchers exist
// that never read. A Set that waited for them would hang the test.
func TestSetNeverWaitsForWatchers(t *testing.T) {
	var v Value[int]
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for range 100 {
		w := v.Watch()
		defer w.Close()
		// A Get that gave up waiting leaves its wake-up channel behind,
		// which Set must close without blocking.
		if _, err := w.Get(cancelled); !errors.Is(err, context.Canceled) {
			t.Fatalf("Get with cancelled context returned %v", err)
		}
	}
	for i := range 10000 {
		v.Set(i)
	}
}

// TestConcurrentWatchersSeeOrderedValues runs one setter publishing an
// increasing sequence against many watchers. Each watcher must see a strictly
// increasing subsequence that ends with the last value.
func TestConcurrentWatchersSeeOrderedValues(t *testing.T) {
	const (
		watchers = 50
		last     = 2000
	)
	var v Value[int]
	var wg sync.WaitGroup
	for range watchers {
		w := v.Watch()
		wg.Go(func() {
			defer w.Close()
			prev := -1
			for prev != last {
				val, err := w.Get(testContext(t))
				if err != nil {
					t.Errorf("Get: %v", err)
					return
				}
				if val <= prev {
					t.Errorf("Get returned %d after %d", val, prev)
					return
				}
				prev = val
			}
		})
	}
	for i := range last + 1 {
		v.Set(i)
	}
	wg.Wait()
}

// TestConcurrentSettersAndWatchers lets the race detector check many
// setters, watchers and Closes on one value. Each watcher waits until it
// sees the value published after all setters finished.
func TestConcurrentSettersAndWatchers(t *testing.T) {
	const (
		setters  = 10
		sets     = 500
		watchers = 20
	)
	done := "done"
	var v Value[string]
	var watching, setting sync.WaitGroup
	for i := range watchers {
		w := v.Watch()
		watching.Go(func() {
			defer w.Close()
			// Odd watchers only wait for the final value, the others read
			// everything they can.
			var opts []event.GetOption[string]
			if i%2 == 1 {
				opts = append(opts, event.Filter(func(s string) bool { return s == done }))
			}
			for {
				val, err := w.Get(testContext(t), opts...)
				if err != nil {
					t.Errorf("Get: %v", err)
					return
				}
				if val == done {
					return
				}
			}
		})
	}
	for i := range setters {
		setting.Go(func() {
			for j := range sets {
				v.Set(fmt.Sprintf("%d/%d", i, j))
			}
		})
	}
	setting.Wait()
	v.Set(done)
	watching.Wait()
}
