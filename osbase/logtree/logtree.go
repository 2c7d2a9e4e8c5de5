package logtree

import (
	"sync"
	"sync/atomic"
)

const (
	// DefaultEntriesPerDN is how many entries each DN keeps when no other
	// limit is configured.
	DefaultEntriesPerDN = 1024
	// DefaultStreamBuffer is how many entries a streaming reader may lag
	// behind before entries are dropped for it.
	DefaultStreamBuffer = 1024
)

// Config tunes a LogTree. The zero value selects the defaults.
type Config struct {
	// EntriesPerDN bounds the ring buffer of every DN. The oldest entry of a
	// DN is evicted when a new one would exceed the bound.
	EntriesPerDN int
	// StreamBuffer is the capacity of the Stream channel of readers.
	StreamBuffer int
}

// LogTree is the in-memory log tree of a node. It is safe for concurrent use.
type LogTree struct {
	entriesPerDN int
	streamBuffer int

	// seq is the last sequence number handed out to an entry.
	seq atomic.Uint64

	// mu guards the shape of the tree (nodes and node.children), the
	// registration of subscribers on nodes, and node.verbositySet. It is never
	// taken on the append path.
	mu    sync.Mutex
	nodes map[DN]*node
}

// node is one DN of the tree.
type node struct {
	tree     *LogTree
	dn       DN
	children map[string]*node

	// verbosity is the effective verbosity level, either set on this node
	// or inherited from the closest ancestor with one set. It is kept
	// up-to-date eagerly so that V(n) is a single atomic load.
	verbosity    atomic.Int32
	verbositySet bool

	// mu guards the ring buffer and the subscriber list.
	mu sync.Mutex
	// entries is the ring buffer. It grows up to tree.entriesPerDN, after
	// which oldest indexes the oldest entry, the next one to be overwritten.
	entries []*LogEntry
	oldest  int
	subs    []*subscriber
}

// New returns an empty log tree with default limits.
func New() *LogTree {
	return NewWithConfig(Config{})
}

// NewWithConfig returns an empty log tree with the given limits.
func NewWithConfig(c Config) *LogTree {
	if c.EntriesPerDN <= 0 {
		c.EntriesPerDN = DefaultEntriesPerDN
	}
	if c.StreamBuffer <= 0 {
		c.StreamBuffer = DefaultStreamBuffer
	}
	l := &LogTree{
		entriesPerDN: c.EntriesPerDN,
		streamBuffer: c.StreamBuffer,
		nodes:        make(map[DN]*node),
	}
	l.nodes[""] = &node{tree: l, dn: "", children: make(map[string]*node)}
	return l
}

// node returns the node for dn, creating it and any missing ancestors.
func (l *LogTree) node(dn DN) (*node, error) {
	path, err := dn.Path()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if n, ok := l.nodes[dn]; ok {
		return n, nil
	}
	cur := l.nodes[""]
	for i, part := range path {
		child, ok := cur.children[part]
		if !ok {
			child = cur.newChild(part, DN(joinPath(path[:i+1])))
			l.nodes[child.dn] = child
		}
		cur = child
	}
	return cur, nil
}

// newChild creates a child node inheriting verbosity and subtree readers from
// its parent. Must be called with tree.mu held.
func (n *node) newChild(name string, dn DN) *node {
	c := &node{tree: n.tree, dn: dn, children: make(map[string]*node)}
	c.verbosity.Store(n.verbosity.Load())
	n.mu.Lock()
	for _, s := range n.subs {
		if s.withChildren {
			c.subs = append(c.subs, s)
			s.nodes = append(s.nodes, c)
		}
	}
	n.mu.Unlock()
	n.children[name] = c
	return c
}

func joinPath(parts []string) string {
	size := len(parts) - 1
	for _, p := range parts {
		size += len(p)
	}
	b := make([]byte, 0, size)
	for i, p := range parts {
		if i > 0 {
			b = append(b, '.')
		}
		b = append(b, p...)
	}
	return string(b)
}

// walk calls fn for n and all its descendants. Must be called with tree.mu
// held.
func (n *node) walk(fn func(*node)) {
	fn(n)
	for _, c := range n.children {
		c.walk(fn)
	}
}

// append stores e in the node's ring buffer and hands it to the node's
// streaming readers.
func (n *node) append(e *LogEntry) {
	n.mu.Lock()
	// The sequence number is taken under the node lock so that the order of
	// a node's buffer always matches sequence order.
	e.seq = n.tree.seq.Add(1)
	if len(n.entries) < n.tree.entriesPerDN {
		n.entries = append(n.entries, e)
	} else {
		n.entries[n.oldest] = e
		n.oldest++
		if n.oldest == len(n.entries) {
			n.oldest = 0
		}
	}
	for _, s := range n.subs {
		s.deliver(e)
	}
	n.mu.Unlock()
}

// SetVerbosity sets the verbosity level of dn: V(n) loggers for dn are enabled
// if n <= level. The level is inherited by all DNs below dn that do not have
// a level set themselves. The default level is 0. Invalid DNs are ignored.
func (l *LogTree) SetVerbosity(dn DN, level VerbosityLevel) {
	n, err := l.node(dn)
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n.verbositySet = true
	n.propagateVerbosity(level)
}

// propagateVerbosity must be called with tree.mu held.
func (n *node) propagateVerbosity(level VerbosityLevel) {
	n.verbosity.Store(int32(level))
	for _, c := range n.children {
		if !c.verbositySet {
			c.propagateVerbosity(level)
		}
	}
}
