package supervisor

import (
	"context"
	"maps"
	"slices"
	"time"

	"metropolis.dev/osbase/logtree"
)

// NodeStatus is the state of one runnable at the time of a snapshot.
type NodeStatus struct {
	DN    logtree.DN
	State State
	// Since is when the runnable entered State.
	Since time.Time
	// Restarts counts how often the runnable has been restarted since its
	// parent started it.
	Restarts int
	// LastError is why the runnable last died, empty if it never did.
	LastError string
	// Running is whether the runnable's function has not returned yet. A
	// DEAD or CANCELED runnable which is still running ignores its canceled
	// context, and holds up the restart of its group.
	Running bool
}

// Snapshot returns the state of every runnable in the tree, in depth-first
// order with siblings sorted by name. Once the supervisor has stopped, it
// returns the state the tree was left in.
func (s *Supervisor) Snapshot() []NodeStatus {
	reply := make(chan []NodeStatus, 1)
	if !s.send(&snapshotMsg{reply: reply}) {
		return s.final
	}
	return <-reply
}

// Snapshot returns the Snapshot of the supervisor of the runnable owning ctx.
func Snapshot(ctx context.Context) []NodeStatus {
	return instanceFrom(ctx, "Snapshot").sup.Snapshot()
}

type snapshotMsg struct {
	reply chan []NodeStatus
}

func (m *snapshotMsg) apply(p *processor) {
	m.reply <- p.snapshot()
}

func (p *processor) snapshot() []NodeStatus {
	var res []NodeStatus
	var walk func(n *node)
	walk = func(n *node) {
		res = append(res, NodeStatus{
			DN:        n.dn,
			State:     n.state,
			Since:     n.since,
			Restarts:  n.restarts,
			LastError: n.lastErr,
			Running:   n.running,
		})
		for _, name := range slices.Sorted(maps.Keys(n.children)) {
			walk(n.children[name])
		}
	}
	walk(p.root)
	return res
}
