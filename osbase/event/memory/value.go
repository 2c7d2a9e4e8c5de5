package memory

import (
	"context"
	"sync"

	"metropolis.dev/osbase/event"
)

// Value is an event.Value held in memory. The zero Value is ready to use and
// has no value yet, so Gets block until the first Set. A Value must not be
// copied after first use.
type Value[T any] struct {
	mu sync.Mutex
	// val is the current value, valid once gen is not zero.
	val T
	// gen counts Sets. Watchers remember the gen they last returned, which
	// tells them whether val is new to them without comparing values.
	gen uint64
	// changed is closed by the next Set to wake blocked Gets. It is only
	// made when a Get needs to wait, so Sets nobody waits for allocate
	// nothing.
	changed chan struct{}
}

// Set publishes val and wakes every watcher blocked in Get.
func (v *Value[T]) Set(val T) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.val = val
	v.gen++
	if v.changed != nil {
		close(v.changed)
		v.changed = nil
	}
}

// Watch returns a new watcher, whose first Get returns the current value if
// there is one.
func (v *Value[T]) Watch() event.Watcher[T] {
	return &watcher[T]{v: v, closed: make(chan struct{})}
}

type watcher[T any] struct {
	v *Value[T]
	// seen is the gen of the value last returned, guarded by v.mu.
	seen uint64

	closeOnce sync.Once
	closed    chan struct{}
}

// Get returns the current value if this watcher has not returned it yet,
// otherwise waits for the next Set. With event.BacklogOnly it does not wait
// but returns event.ErrBacklogDone.
func (w *watcher[T]) Get(ctx context.Context, opts ...event.GetOption[T]) (T, error) {
	o := event.ParseGetOptions(opts)
	var zero T
	for {
		select {
		case <-w.closed:
			return zero, event.ErrWatcherClosed
		default:
		}

		val, changed, ok := w.next()
		if ok {
			if o.Accept(val) {
				return val, nil
			}
			continue
		}
		if o.BacklogOnly() {
			return zero, event.ErrBacklogDone
		}
		select {
		case <-changed:
		case <-w.closed:
			return zero, event.ErrWatcherClosed
		case <-ctx.Done():
			return zero, ctx.Err()
		}
	}
}

// next marks the current value as seen and returns it if the watcher had not
// seen it before. Otherwise it returns a channel closed by the next Set, on
// which the caller can wait without missing a Set that happens in between.
func (w *watcher[T]) next() (val T, changed <-chan struct{}, ok bool) {
	v := w.v
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.gen != w.seen {
		w.seen = v.gen
		return v.val, nil, true
	}
	if v.changed == nil {
		v.changed = make(chan struct{})
	}
	return val, v.changed, false
}

// Close wakes a Get blocked on this watcher and makes later Gets fail. The
// watcher holds no other resources.
func (w *watcher[T]) Close() error {
	w.closeOnce.Do(func() { close(w.closed) })
	return nil
}
