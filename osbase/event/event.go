package event

import (
	"context"
	"errors"
)

// Watchable is a value whose changes can be followed.
type Watchable[T any] interface {
	// Watch returns a new Watcher that has not seen any value yet. The
	// caller must Close it when done to release its resources.
	Watch() Watcher[T]
}

// Value is a Watchable that the process publishes itself.
type Value[T any] interface {
	Watchable[T]
	// Set publishes val as the current value. It never waits for watchers.
	// Watchers receive val itself, so reference types must not be mutated
	// after being Set.
	Set(val T)
}

// Watcher follows a Watchable on behalf of one consumer. Get must not be
// called concurrently on the same Watcher, but Close may be called from any
// goroutine at any time.
type Watcher[T any] interface {
	// Get returns the latest value that this watcher has not returned yet,
	// blocking until there is one. Values that were superseded before Get
	// was called are skipped; for values spanning several keys, like etcd
	// ranges, this holds for each key. If ctx is done before a value is
	// available, Get returns ctx.Err(). After Close, Get returns
	// ErrWatcherClosed.
	Get(ctx context.Context, opts ...GetOption[T]) (T, error)
	// Close releases the watcher's resources and makes pending and later
	// Gets return ErrWatcherClosed. Closing twice is harmless.
	Close() error
}

var (
	// ErrBacklogDone is returned by a Get with BacklogOnly when there is no
	// value available without waiting.
	ErrBacklogDone = errors.New("event: no more backlogged values")
	// ErrWatcherClosed is returned by Get once the Watcher was closed.
	ErrWatcherClosed = errors.New("event: watcher closed")
)
