package event

// GetOption changes the behaviour of a single Get call.
type GetOption[T any] func(*GetOptions[T])

// GetOptions is the combined effect of the options given to a Get call. It
// exists for implementations of Watcher, which obtain it from
// ParseGetOptions.
type GetOptions[T any] struct {
	filters     []func(T) bool
	backlogOnly bool
}

// ParseGetOptions combines the options given to a Get call.
func ParseGetOptions[T any](opts []GetOption[T]) GetOptions[T] {
	var o GetOptions[T]
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Accept reports whether Get may return val, that is whether it matches
// every Filter.
func (o *GetOptions[T]) Accept(val T) bool {
	for _, pred := range o.filters {
		if !pred(val) {
			return false
		}
	}
	return true
}

// BacklogOnly reports whether Get must not wait for new values.
func (o *GetOptions[T]) BacklogOnly() bool {
	return o.backlogOnly
}

// Filter makes Get skip values for which pred returns false, as if they had
// been seen. Get keeps waiting until a value matches. With several Filters, a
// value must match all of them.
func Filter[T any](pred func(T) bool) GetOption[T] {
	return func(o *GetOptions[T]) {
		o.filters = append(o.filters, pred)
	}
}

// BacklogOnly makes Get return only values that are available without
// waiting, and ErrBacklogDone once there are none. What counts as available
// depends on the implementation: for an in-memory value it is the current
// value if the watcher has not seen it, for an etcd value it is the state
// read by the watcher's first Get. Repeated Gets with BacklogOnly thus read
// out a snapshot, after which plain Gets follow changes.
func BacklogOnly[T any]() GetOption[T] {
	return func(o *GetOptions[T]) {
		o.backlogOnly = true
	}
}
