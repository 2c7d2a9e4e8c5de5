// Package event provides typed observable values: a piece of state that one
// part of the system publishes and any number of others follow.
//
// A Value holds state, not a stream of messages. A Watcher's Get returns the
// latest value that watcher has not seen yet, blocking until there is one.
// If the value changes several times between two Gets, the watcher only sees
// the last of those changes: intermediate values are skipped on purpose.
// Consumers of state almost always want to act on what is true now, and
// skipping stale values means a slow watcher never holds up the publisher
// nor piles up an unbounded backlog. Code that must observe every single
// change needs a queue, not a Value.
//
// A new Watcher's first Get returns the current value at once if there is
// one, so a late watcher does not miss the state established before it
// started watching.
//
// Interfaces are split by capability. Watchable is anything that can be
// followed; Value adds Set for values that the process itself publishes, like
// those in package memory. Values mirrored from elsewhere, like keys in etcd
// (package etcd), implement only Watchable: they are written by transactions
// that check conditions and touch several keys at once, which a single
// unconditional Set cannot express, so offering one would only invite
// writes that bypass those transactions.
//
// Get accepts options: Filter makes it skip values that do not match a
// predicate, BacklogOnly makes it return only what is already available and
// ErrBacklogDone instead of waiting. Pipe turns a Watchable into a stream on a
// channel, to combine several values in one select loop.
package event
