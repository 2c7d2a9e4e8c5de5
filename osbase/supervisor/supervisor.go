package supervisor

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"metropolis.dev/osbase/logtree"
)

// Runnable is a supervised function. It must return once ctx is canceled.
// See the package documentation for what its return value means.
type Runnable func(ctx context.Context) error

// Supervisor runs a supervision tree. It is created by New.
type Supervisor struct {
	lt *logtree.LogTree
	// log receives every state change of the tree, so that one DN tells the
	// whole story of what was started, what died and why.
	log            logtree.LeveledLogger
	propagatePanic bool
	backoffInitial time.Duration
	backoffMax     time.Duration

	// msgs carries all requests to the processor.
	msgs chan message
	// done is closed once the processor has stopped.
	done chan struct{}
	// final is the last snapshot of the tree, written before done is closed.
	final []NodeStatus
}

// SupervisorOpt configures a Supervisor created by New.
type SupervisorOpt func(*Supervisor)

// WithExistingLogtree makes the supervisor log into lt instead of a new log
// tree of its own.
func WithExistingLogtree(lt *logtree.LogTree) SupervisorOpt {
	return func(s *Supervisor) { s.lt = lt }
}

// WithPropagatePanic makes panics in runnables crash the program instead of
// being turned into failures. Meant for tests, where a panic is a bug that
// should not be papered over by a restart.
func WithPropagatePanic() SupervisorOpt {
	return func(s *Supervisor) { s.propagatePanic = true }
}

// WithBackoff sets the delay before the first restart of a failing group and
// the maximum it grows to. A runnable which was healthy for at least maxDelay
// before failing starts again at initial. It panics unless
// 0 < initial <= maxDelay.
func WithBackoff(initial, maxDelay time.Duration) SupervisorOpt {
	if initial <= 0 || maxDelay < initial {
		panic(fmt.Sprintf("supervisor.WithBackoff: invalid backoff %v..%v", initial, maxDelay))
	}
	return func(s *Supervisor) {
		s.backoffInitial = initial
		s.backoffMax = maxDelay
	}
}

// New starts a supervision tree with root as its root runnable, DN "root", in
// the background. The tree runs until ctx is canceled; Done tells when it
// has completely stopped. Every state change in the tree is logged, with its
// reason, at the DN "supervisor" of the log tree.
func New(ctx context.Context, root Runnable, opts ...SupervisorOpt) *Supervisor {
	if root == nil {
		panic("supervisor.New: root runnable is nil")
	}
	s := &Supervisor{
		backoffInitial: defaultBackoffInitial,
		backoffMax:     defaultBackoffMax,
		msgs:           make(chan message),
		done:           make(chan struct{}),
	}
	for _, opt := range opts {
		opt(s)
	}
	if s.lt == nil {
		s.lt = logtree.New()
	}
	s.log = s.lt.MustLeveledFor("supervisor")
	p := &processor{sup: s, ctx: ctx}
	go p.run(root)
	return s
}

// Done returns a channel which is closed once the supervisor's context has
// been canceled and every runnable has returned.
func (s *Supervisor) Done() <-chan struct{} {
	return s.done
}

// Wait blocks until Done is closed.
func (s *Supervisor) Wait() {
	<-s.done
}

// send hands m to the processor. It returns false if the processor has
// stopped, which only happens once all runnables have returned, so only
// goroutines that runnables left behind ever see that.
func (s *Supervisor) send(m message) bool {
	select {
	case s.msgs <- m:
		return true
	case <-s.done:
		return false
	}
}

// errGoexit is reported for runnables which neither returned nor panicked.
var errGoexit = errors.New("runnable called runtime.Goexit (eg. through t.FailNow)")

// execute runs the runnable of in and reports its end to the processor, in
// every way a goroutine can end.
func (s *Supervisor) execute(in *instance) {
	err := errGoexit
	defer func() { s.send(&exitMsg{inst: in, err: err}) }()
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		err = fmt.Errorf("panic: %v", r)
		if s.propagatePanic {
			panic(r)
		}
		s.lt.MustLeveledFor(in.node.dn).Errorf("panic: %v\n\n%s", r, debug.Stack())
	}()
	err = in.node.runnable(in.ctx)
}
