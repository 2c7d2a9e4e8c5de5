package etcd

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"metropolis.dev/osbase/event"
)

type watcher[T any] struct {
	v *Value[T]
	// ctx lives as long as the watcher; close cancels it, which ends the
	// etcd watch and any Get in progress.
	ctx   context.Context
	close context.CancelFunc

	// The remaining fields belong to Get, which is never concurrent.

	state state
	// synced is false while the watcher must (re)read its keys before it
	// can trust state to follow etcd: before the first read, and after the
	// etcd watch ended.
	synced bool
	// rev is the revision of the last read, from which the etcd watch
	// continues.
	rev int64
	// changes delivers etcd watch responses. It is nil while no watch runs.
	changes     clientv3.WatchChan
	cancelWatch context.CancelFunc
}

// Get returns the next change, reading the backlog first and then waiting
// for the etcd watch. Errors from etcd and from the decoder are returned
// without ending the watcher: the next Get retries a failed read and moves
// past a value that failed to decode.
func (w *watcher[T]) Get(ctx context.Context, opts ...event.GetOption[T]) (T, error) {
	o := event.ParseGetOptions(opts)
	var zero T
	if w.ctx.Err() != nil {
		return zero, event.ErrWatcherClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(w.ctx, cancel)
	defer stop()

	for {
		if !w.synced {
			if err := w.read(ctx); err != nil {
				return zero, w.contextError(ctx, fmt.Errorf("reading %v: %w", w.v, err))
			}
		}
		if !o.BacklogOnly() {
			w.drain()
			if !w.synced {
				continue
			}
		}
		key, value, ok := w.state.next(o.BacklogOnly())
		if !ok {
			if o.BacklogOnly() {
				return zero, event.ErrBacklogDone
			}
			if err := w.wait(ctx); err != nil {
				return zero, w.contextError(ctx, err)
			}
			continue
		}
		val, err := w.v.decoder([]byte(key), value)
		if err != nil {
			return zero, fmt.Errorf("decoding etcd key %q: %w", key, err)
		}
		if o.Accept(val) {
			return val, nil
		}
	}
}

// contextError returns why ctx is done instead of err, the failure this
// caused, which says less: Close or the caller's own cancellation.
func (w *watcher[T]) contextError(ctx context.Context, err error) error {
	switch {
	case w.ctx.Err() != nil:
		return event.ErrWatcherClosed
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return err
}

// read fetches all keys at the current revision and queues the differences
// to what the watcher knew. Any running etcd watch is stopped, because it
// would deliver changes from before the read.
func (w *watcher[T]) read(ctx context.Context) error {
	w.stopWatch()
	res, err := w.v.cl.Get(ctx, w.v.key, w.v.opOptions()...)
	if err != nil {
		return err
	}
	w.state.reset(res.Kvs)
	w.rev = res.Header.Revision
	w.synced = true
	return nil
}

// wait blocks until the etcd watch delivers a response and applies it,
// starting the watch first if none is running.
func (w *watcher[T]) wait(ctx context.Context) error {
	if w.changes == nil {
		w.startWatch()
	}
	select {
	case res, ok := <-w.changes:
		w.apply(res, ok)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drain applies the watch responses that have already arrived, so that Get
// returns the latest state it can without waiting.
func (w *watcher[T]) drain() {
	for w.changes != nil {
		select {
		case res, ok := <-w.changes:
			w.apply(res, ok)
		default:
			return
		}
	}
}

// apply records the changes in a watch response. A watch that ended, for
// whatever reason, makes the watcher read again, as the watcher cannot know what
// it missed. The most common reason is compaction, when the watch starts
// from a revision etcd no longer has.
func (w *watcher[T]) apply(res clientv3.WatchResponse, ok bool) {
	if !ok || res.Canceled || res.Err() != nil {
		w.stopWatch()
		w.synced = false
		return
	}
	for _, ev := range res.Events {
		switch ev.Type {
		case clientv3.EventTypePut:
			w.state.put(ev.Kv)
		case clientv3.EventTypeDelete:
			w.state.delete(string(ev.Kv.Key))
		}
	}
}

func (w *watcher[T]) startWatch() {
	// Without a leader, the member the client talks to may be cut off from
	// the cluster and stop receiving changes; requiring a leader turns that
	// into a failed watch, which makes the watcher read again.
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(w.ctx))
	opts := append(w.v.opOptions(), clientv3.WithRev(w.rev+1))
	w.changes = w.v.cl.Watch(ctx, w.v.key, opts...)
	w.cancelWatch = cancel
}

func (w *watcher[T]) stopWatch() {
	if w.cancelWatch != nil {
		w.cancelWatch()
	}
	w.changes = nil
	w.cancelWatch = nil
}

// Close ends the watcher's etcd watch and any Get in progress.
func (w *watcher[T]) Close() error {
	w.close()
	return nil
}
