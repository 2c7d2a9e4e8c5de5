package event

import "context"

// Pipe returns a runnable that watches value and sends every value it gets
// into c, passing opts to each Get. It lets a select loop combine several
// values, each forwarded into its own channel by a Pipe running alongside it.
//
// The runnable returns ctx.Err() once ctx is done, or the first error from
// Get, for example ErrBacklogDone after the backlog when opts include
// BacklogOnly. It closes its watcher before returning, but never closes c,
// which others may still send to.
func Pipe[T any](value Watchable[T], c chan<- T, opts ...GetOption[T]) func(context.Context) error {
	return func(ctx context.Context) error {
		w := value.Watch()
		defer w.Close()
		for {
			val, err := w.Get(ctx, opts...)
			if err != nil {
				return err
			}
			select {
			case c <- val:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}
