// Package etcd implements event.Watchable for state stored in etcd, so that
// code following cluster state uses the same Watcher as code following
// in-process state.
//
// A Value covers either a single key or a range of keys and turns their
// raw contents into typed values with a decoder. It is read-only: the state
// it mirrors is written elsewhere, usually by transactions guarded by
// conditions, which is why it does not implement event.Value.
//
// For a single key, Get returns the key's latest state. A watcher that falls
// behind skips intermediate values, exactly like an in-memory value. For a
// range, each Get returns the latest state of one key that changed, so a
// watcher still sees every key that changed, but each key only in its latest
// state. In both cases a deleted key is reported by calling the decoder with
// a nil value; a key that exists but is empty is decoded from an empty,
// non-nil slice.
//
// A watcher first reads all its keys at one revision. These keys form its
// backlog, returned in key order; this is what event.BacklogOnly reads out.
// Only when the backlog is exhausted does the watcher start an etcd watch
// from the revision after that read. If etcd compacted that revision away,
// or if the watch fails for any other reason, the watcher reads its keys
// again, compares them with what it knew and returns the differences, so
// that following state survives compaction and lost connections. Changes
// that happened entirely within a gap, like a key created and deleted again,
// are not reported; the state after the gap is.
package etcd
