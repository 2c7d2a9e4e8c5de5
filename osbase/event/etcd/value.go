package etcd

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"metropolis.dev/osbase/event"
)

// Client is the part of an etcd client that a Value needs. *clientv3.Client
// implements it, and so does a namespaced KV and Watcher pair.
type Client interface {
	clientv3.KV
	clientv3.Watcher
}

// Value is an event.Watchable of the decoded state of an etcd key or key
// range.
type Value[T any] struct {
	cl      Client
	key     string
	end     string
	decoder func(key, value []byte) (T, error)
}

// Option configures a Value.
type Option func(*options)

type options struct {
	end string
}

// Range makes a Value cover the key range [key, end) instead of a single
// key, with etcd's conventions: clientv3.GetPrefixRangeEnd(key) covers all
// keys with prefix key, and "\x00" all keys from key on.
func Range(end string) Option {
	return func(o *options) {
		o.end = end
	}
}

// NewValue returns a Value following key in etcd through cl. decoder turns a
// key's contents into a T; it is called with a nil value when the key was
// deleted. Errors it returns are returned by Get.
func NewValue[T any](cl Client, key string, decoder func(key, value []byte) (T, error), opts ...Option) *Value[T] {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return &Value[T]{cl: cl, key: key, end: o.end, decoder: decoder}
}

// Watch returns a new watcher. It does not contact etcd until its first Get.
func (v *Value[T]) Watch() event.Watcher[T] {
	ctx, cancel := context.WithCancel(context.Background())
	return &watcher[T]{v: v, ctx: ctx, close: cancel}
}

// opOptions selects the Value's keys in etcd requests.
func (v *Value[T]) opOptions() []clientv3.OpOption {
	if v.end == "" {
		return nil
	}
	return []clientv3.OpOption{clientv3.WithRange(v.end)}
}

// String names the keys the Value covers, for error messages.
func (v *Value[T]) String() string {
	if v.end == "" {
		return fmt.Sprintf("etcd key %q", v.key)
	}
	return fmt.Sprintf("etcd range [%q, %q)", v.key, v.end)
}
