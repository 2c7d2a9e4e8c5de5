package supervisor

import (
	"context"
	"fmt"
	"time"

	"metropolis.dev/osbase/logtree"
)

// State of a node in the supervision tree. See the package documentation for
// the transitions between states.
type State int

const (
	// StateNew is a runnable which has been started but has not signalled
	// anything yet.
	StateNew State = iota
	// StateHealthy is a runnable which signalled SignalHealthy.
	StateHealthy
	// StateDone is a runnable which signalled SignalDone.
	StateDone
	// StateDead is a runnable which failed (or whose group member failed)
	// and waits to be restarted.
	StateDead
	// StateCanceled is a runnable stopped because an ancestor died or the
	// supervisor shut down. It is never restarted.
	StateCanceled
)

func (s State) String() string {
	switch s {
	case StateNew:
		return "NEW"
	case StateHealthy:
		return "HEALTHY"
	case StateDone:
		return "DONE"
	case StateDead:
		return "DEAD"
	case StateCanceled:
		return "CANCELED"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// node is a runnable in the tree. It outlives restarts, which replace its
// instance, so that restart counts and errors carry over. Only the processor
// touches its fields, except for the immutable dn.
type node struct {
	dn       logtree.DN
	runnable Runnable
	parent   *node
	group    *group

	state    State
	since    time.Time
	restarts int
	lastErr  string
	// healthySince is when the current instance first signalled Healthy or
	// Done, zero if it has not yet.
	healthySince time.Time

	// inst is the current incarnation.
	inst *instance
	// running is whether the goroutine of inst has not returned yet.
	running bool
	// children started by the current instance, by name.
	children map[string]*node
	// names reserved by the current instance for children and sub-loggers,
	// which share the DN namespace below the node.
	names map[string]bool
}

// busy returns the first node in n's subtree whose runnable has not returned
// yet, or nil if the whole subtree has stopped.
func (n *node) busy() *node {
	if n.running {
		return n
	}
	for _, c := range n.children {
		if b := c.busy(); b != nil {
			return b
		}
	}
	return nil
}

// group is a set of siblings which die and restart together.
type group struct {
	// members, sorted by name so that start order and logs are stable.
	members []*node
	backoff backoff
	// timer fires when the backoff after the last failure has elapsed.
	timer *time.Timer
	// restartDue is set once timer fired. The group is restarted as soon as
	// every goroutine below its members has returned.
	restartDue bool
}

// instance is one incarnation of a node: one call of its runnable. It is
// carried in the runnable's context, and lets the processor tell calls of the
// current incarnation from those of goroutines a dead one left behind. Its
// fields never change after creation.
type instance struct {
	sup    *Supervisor
	node   *node
	ctx    context.Context
	cancel context.CancelFunc
}

type instanceKey struct{}

// instanceFrom returns the instance of the runnable ctx belongs to. Calling
// supervisor functions from outside a runnable is a programming error, so it
// panics then.
func instanceFrom(ctx context.Context, fn string) *instance {
	in, ok := ctx.Value(instanceKey{}).(*instance)
	if !ok {
		panic(fmt.Sprintf("supervisor.%s called with a context that does not belong to a runnable", fn))
	}
	return in
}
