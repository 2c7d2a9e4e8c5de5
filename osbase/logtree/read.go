package logtree

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// BacklogAllAvailable makes WithBacklog return every entry still buffered.
const BacklogAllAvailable = -1

// LogReadOption configures LogTree.Read.
type LogReadOption struct {
	apply func(*readOptions)
}

type readOptions struct {
	withChildren bool
	// backlog is the number of past entries to return, 0 for none.
	backlog     int
	stream      bool
	onlyRaw     bool
	onlyLeveled bool
	// minSeverity filters leveled entries, 0 means no filtering.
	minSeverity Severity
}

// WithChildren makes the read include all DNs below the requested one.
func WithChildren() LogReadOption {
	return LogReadOption{func(o *readOptions) { o.withChildren = true }}
}

// WithBacklog makes the read return the last n buffered entries (after
// filtering) in LogReader.Backlog, or all of them if n is
// BacklogAllAvailable.
func WithBacklog(n int) LogReadOption {
	return LogReadOption{func(o *readOptions) { o.backlog = n }}
}

// WithStream makes the read deliver all entries appended after the read
// began on LogReader.Stream, until the reader is closed.
func WithStream() LogReadOption {
	return LogReadOption{func(o *readOptions) { o.stream = true }}
}

// OnlyRaw makes the read return only raw entries.
func OnlyRaw() LogReadOption {
	return LogReadOption{func(o *readOptions) { o.onlyRaw = true }}
}

// OnlyLeveled makes the read return only leveled entries.
func OnlyLeveled() LogReadOption {
	return LogReadOption{func(o *readOptions) { o.onlyLeveled = true }}
}

// LeveledWithMinimumSeverity makes the read skip leveled entries less severe
// than s. Raw entries have no severity and are not affected; combine with
// OnlyLeveled to drop them as well.
func LeveledWithMinimumSeverity(s Severity) LogReadOption {
	return LogReadOption{func(o *readOptions) { o.minSeverity = s }}
}

func (o *readOptions) validate() error {
	if o.onlyRaw && o.onlyLeveled {
		return errors.New("OnlyRaw and OnlyLeveled are mutually exclusive")
	}
	if o.backlog < 0 && o.backlog != BacklogAllAvailable {
		return fmt.Errorf("invalid backlog size %d", o.backlog)
	}
	if o.minSeverity != 0 && !o.minSeverity.Valid() {
		return fmt.Errorf("invalid minimum severity %d", int8(o.minSeverity))
	}
	return nil
}

func (o *readOptions) match(e *LogEntry) bool {
	if e.Leveled != nil {
		return !o.onlyRaw && e.Leveled.severity >= o.minSeverity
	}
	return !o.onlyLeveled
}

// LogReader is the result of LogTree.Read. Readers which stream must be
// closed, otherwise the tree keeps delivering (and, once the reader's buffer
// is full, counting missed) entries for them forever.
type LogReader struct {
	// Backlog holds the requested past entries in chronological order across
	// all DNs read.
	Backlog []*LogEntry
	// Stream delivers entries appended after the read began, if WithStream
	// was given; it is nil otherwise. It is closed by Close.
	Stream <-chan *LogEntry

	sub  *subscriber
	tree *LogTree
}

// Missed returns the number of entries that were not delivered on Stream
// because the reader did not keep up.
func (r *LogReader) Missed() uint64 {
	if r.sub == nil {
		return 0
	}
	return r.sub.missed.Load()
}

// Close stops streaming and closes Stream. It is safe to call more than once.
func (r *LogReader) Close() {
	if r.sub == nil {
		return
	}
	r.sub.closeOnce.Do(func() {
		r.tree.mu.Lock()
		for _, n := range r.sub.nodes {
			n.mu.Lock()
			n.subs = slices.DeleteFunc(n.subs, func(s *subscriber) bool { return s == r.sub })
			n.mu.Unlock()
		}
		r.sub.nodes = nil
		r.tree.mu.Unlock()
		// Nothing can send anymore, as senders hold the lock of a node the
		// subscriber was just removed from.
		close(r.sub.ch)
	})
}

// subscriber is a streaming reader, registered on every node it watches.
type subscriber struct {
	ch           chan *LogEntry
	filter       readOptions
	withChildren bool
	missed       atomic.Uint64
	closeOnce    sync.Once

	// nodes the subscriber is registered on, guarded by tree.mu.
	nodes []*node
}

// deliver must be called with the lock of a node the subscriber is registered
// on held. It never blocks.
func (s *subscriber) deliver(e *LogEntry) {
	if !s.filter.match(e) {
		return
	}
	select {
	case s.ch <- e:
	default:
		s.missed.Add(1)
	}
}

// Read returns the entries of dn (and, WithChildren, of the DNs below it)
// according to the given options.
func (l *LogTree) Read(dn DN, opts ...LogReadOption) (*LogReader, error) {
	var o readOptions
	for _, opt := range opts {
		opt.apply(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	// Reading a DN that has not logged yet is fine: it may do so later.
	top, err := l.node(dn)
	if err != nil {
		return nil, err
	}

	r := &LogReader{tree: l}
	if o.stream {
		r.sub = &subscriber{
			ch:           make(chan *LogEntry, l.streamBuffer),
			filter:       o,
			withChildren: o.withChildren,
		}
		r.Stream = r.sub.ch
	}

	var backlog []*LogEntry
	nodes := 0
	visit := func(n *node) {
		nodes++
		n.mu.Lock()
		defer n.mu.Unlock()
		if o.backlog != 0 {
			backlog = n.collect(backlog, &o)
		}
		// Registering under the same lock as copying the backlog makes
		// every entry land in exactly one of the two.
		if r.sub != nil {
			n.subs = append(n.subs, r.sub)
			r.sub.nodes = append(r.sub.nodes, n)
		}
	}
	l.mu.Lock()
	if o.withChildren {
		top.walk(visit)
	} else {
		visit(top)
	}
	l.mu.Unlock()

	if nodes > 1 {
		slices.SortFunc(backlog, func(a, b *LogEntry) int { return cmp.Compare(a.seq, b.seq) })
	}
	if o.backlog > 0 && len(backlog) > o.backlog {
		backlog = backlog[len(backlog)-o.backlog:]
	}
	r.Backlog = backlog
	return r, nil
}

// collect appends the last o.backlog matching entries of the node to dst in
// chronological order. Must be called with n.mu held.
func (n *node) collect(dst []*LogEntry, o *readOptions) []*LogEntry {
	start := len(dst)
	count := len(n.entries)
	// Walk from newest to oldest so that only the requested number of
	// matching entries are looked at.
	for i := count - 1; i >= 0; i-- {
		if o.backlog > 0 && len(dst)-start >= o.backlog {
			break
		}
		e := n.entries[(n.oldest+i)%count]
		if o.match(e) {
			dst = append(dst, e)
		}
	}
	slices.Reverse(dst[start:])
	return dst
}
