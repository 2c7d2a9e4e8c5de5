package supervisor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"metropolis.dev/osbase/logtree"
)

// message is a request to the processor. apply runs on the processor
// goroutine and is the only code that reads or changes the tree.
type message interface {
	apply(p *processor)
}

// processor owns the supervision tree. See the package documentation.
type processor struct {
	sup *Supervisor
	// ctx is the supervisor's context. Once it is canceled, the tree is
	// shutting down and nothing is restarted anymore.
	ctx          context.Context
	root         *node
	shuttingDown bool
}

// errNoDone is the failure of a runnable which returned nil while it should
// still be running.
var errNoDone = errors.New("returned nil without signalling Done")

func (p *processor) run(root Runnable) {
	p.root = p.newGroup(nil, map[string]Runnable{"root": root})[0]
	ctxDone := p.ctx.Done()
	for {
		select {
		case <-ctxDone:
			// Only once: the channel stays readable forever.
			ctxDone = nil
			p.shutdown()
		case m := <-p.sup.msgs:
			m.apply(p)
		}
		if p.shuttingDown && p.root.busy() == nil {
			p.sup.log.Info("all runnables stopped, supervisor exiting")
			p.sup.final = p.snapshot()
			close(p.sup.done)
			return
		}
	}
}

// newGroup creates and starts a group of children of parent (nil for the
// root), returning its members.
func (p *processor) newGroup(parent *node, runnables map[string]Runnable) []*node {
	g := &group{backoff: backoff{initial: p.sup.backoffInitial, max: p.sup.backoffMax}}
	for _, name := range slices.Sorted(maps.Keys(runnables)) {
		dn := logtree.DN(name)
		if parent != nil {
			dn = parent.dn + "." + dn
			parent.names[name] = true
		}
		n := &node{dn: dn, runnable: runnables[name], parent: parent, group: g, since: time.Now()}
		if parent != nil {
			parent.children[name] = n
		}
		g.members = append(g.members, n)
	}
	for _, n := range g.members {
		p.sup.log.Infof("%s: started", n.dn)
		p.start(n)
	}
	return g.members
}

// start runs a new incarnation of n, below the current incarnation of its
// parent so that canceling the parent cancels it.
func (p *processor) start(n *node) {
	parentCtx := p.ctx
	if n.parent != nil {
		parentCtx = n.parent.inst.ctx
	}
	ctx, cancel := context.WithCancel(parentCtx)
	in := &instance{sup: p.sup, node: n, cancel: cancel}
	in.ctx = context.WithValue(ctx, instanceKey{}, in)
	n.inst = in
	n.running = true
	n.healthySince = time.Time{}
	n.children = make(map[string]*node)
	n.names = make(map[string]bool)
	go p.sup.execute(in)
}

// setState moves n to state s and logs why.
func (p *processor) setState(n *node, s State, why string) {
	old := n.state
	n.state = s
	n.since = time.Now()
	if (s == StateHealthy || s == StateDone) && n.healthySince.IsZero() {
		n.healthySince = n.since
	}
	if s == StateDead {
		p.sup.log.Warningf("%s: %s -> %s: %s", n.dn, old, s, why)
	} else {
		p.sup.log.Infof("%s: %s -> %s: %s", n.dn, old, s, why)
	}
}

// fail kills the group of n because n failed with err, and schedules its
// restart.
func (p *processor) fail(n *node, err error) {
	g := n.group
	// Having been healthy for as long as the longest delay, n did not fail
	// in the same crash loop as before, so it deserves a quick restart.
	fresh := !n.healthySince.IsZero() && time.Since(n.healthySince) >= g.backoff.max
	delay := g.backoff.next(fresh, 2*rand.Float64()-1)
	for _, m := range g.members {
		m.lastErr = err.Error()
		if m != n {
			m.lastErr = fmt.Sprintf("group member %s died: %v", n.dn, err)
		}
		p.setState(m, StateDead, fmt.Sprintf("%s; restarting in %v (restart %d)", m.lastErr, delay.Round(time.Millisecond), m.restarts+1))
		m.inst.cancel()
		for _, c := range m.children {
			p.cancelTree(c, fmt.Sprintf("parent %s died", m.dn))
		}
	}
	g.restartDue = false
	g.timer = time.AfterFunc(delay, func() { p.sup.send(&restartMsg{g: g}) })
}

// cancelTree moves n and everything below it to CANCELED for good.
func (p *processor) cancelTree(n *node, why string) {
	if n.state != StateCanceled {
		p.setState(n, StateCanceled, why)
	}
	n.inst.cancel()
	if n.group.timer != nil {
		n.group.timer.Stop()
	}
	for _, c := range n.children {
		p.cancelTree(c, why)
	}
}

// maybeRestart restarts g if it is dead, its backoff has elapsed and nothing
// of its previous incarnation is still running.
func (p *processor) maybeRestart(g *group) {
	if !g.restartDue {
		return
	}
	for _, m := range g.members {
		if m.state != StateDead || m.busy() != nil {
			return
		}
	}
	g.restartDue = false
	for _, m := range g.members {
		m.restarts++
		p.setState(m, StateNew, fmt.Sprintf("restart %d", m.restarts))
		p.start(m)
	}
}

func (p *processor) shutdown() {
	if p.shuttingDown {
		return
	}
	p.shuttingDown = true
	p.sup.log.Info("context canceled, stopping all runnables")
	p.cancelTree(p.root, "supervisor is shutting down")
}

// exitMsg reports that the runnable of inst returned err.
type exitMsg struct {
	inst *instance
	err  error
}

func (m *exitMsg) apply(p *processor) {
	n := m.inst.node
	n.running = false
	// The supervisor's context is canceled outside of the processor, so a
	// runnable may notice before the processor does. Its exit is then part of
	// the shutdown, not a failure.
	if p.ctx.Err() != nil {
		p.shutdown()
	}
	switch n.state {
	case StateNew, StateHealthy:
		err := m.err
		if err == nil {
			err = errNoDone
		}
		p.fail(n, err)
	case StateDone:
		if m.err != nil {
			p.fail(n, m.err)
		} else {
			p.sup.log.Infof("%s: returned after signalling Done", n.dn)
		}
	case StateDead, StateCanceled:
		if m.err != nil && !errors.Is(m.err, context.Canceled) {
			p.sup.log.Infof("%s: returned after being stopped: %v", n.dn, m.err)
		}
	}
	// n may have been the last thing a dead group above it waited for.
	for a := n; a != nil; a = a.parent {
		p.maybeRestart(a.group)
	}
}

// restartMsg reports that the backoff of g has elapsed.
type restartMsg struct {
	g *group
}

func (m *restartMsg) apply(p *processor) {
	m.g.restartDue = true
	p.maybeRestart(m.g)
	if m.g.restartDue {
		for _, mem := range m.g.members {
			if b := mem.busy(); b != nil && mem.state == StateDead {
				p.sup.log.Infof("%s: restart waits for %s to return", mem.dn, b.dn)
			}
		}
	}
}
