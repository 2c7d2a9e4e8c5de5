package supervisor

import (
	"context"
	"errors"
	"fmt"
	"regexp"
)

// Run starts r as a child of the runnable owning ctx, named name. The child's
// DN is the parent's DN followed by name. See RunGroup.
func Run(ctx context.Context, name string, r Runnable) error {
	return RunGroup(ctx, map[string]Runnable{name: r})
}

// RunGroup starts runnables as children of the runnable owning ctx, keyed by
// their names. The children form a group: when one of them fails, all of them
// are stopped and restarted together. Use it for runnables which only work
// as a whole, eg. ones exchanging data over channels created by the parent.
//
// Names must be a single DN part (lowercase letters, digits, '-' and '_') and
// must not be taken by another child or sub-logger of the same incarnation of
// the parent. Children can only be started while the parent's runnable has not
// returned yet.
func RunGroup(ctx context.Context, runnables map[string]Runnable) error {
	in := instanceFrom(ctx, "RunGroup")
	if len(runnables) == 0 {
		return errors.New("no runnables given")
	}
	for name, r := range runnables {
		if err := validateName(name); err != nil {
			return err
		}
		if r == nil {
			return fmt.Errorf("runnable %q is nil", name)
		}
	}
	reply := make(chan error, 1)
	if !in.sup.send(&runMsg{inst: in, runnables: runnables, reply: reply}) {
		return errStopped
	}
	return <-reply
}

// errStopped is returned to goroutines which outlived the whole tree.
var errStopped = errors.New("supervisor has stopped")

var namePattern = regexp.MustCompile(`^[a-z0-9_-]+$`)

func validateName(name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("invalid name %q: must be non-empty and consist of [a-z0-9_-]", name)
	}
	return nil
}

type runMsg struct {
	inst      *instance
	runnables map[string]Runnable
	reply     chan error
}

func (m *runMsg) apply(p *processor) {
	n := m.inst.node
	if err := m.inst.ctx.Err(); err != nil {
		m.reply <- fmt.Errorf("cannot start children of %s: %w", n.dn, err)
		return
	}
	if !n.running {
		m.reply <- fmt.Errorf("cannot start children of %s: its runnable has already returned", n.dn)
		return
	}
	for name := range m.runnables {
		if n.names[name] {
			m.reply <- fmt.Errorf("%s already has a child or sub-logger named %q", n.dn, name)
			return
		}
	}
	p.newGroup(n, m.runnables)
	m.reply <- nil
}
