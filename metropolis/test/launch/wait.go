package launch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"metropolis.dev/osbase/test/qemu"
)

// Base timeouts, chosen for software emulation (TCG) on a 2-core machine and
// scaled by qemu.Timeout (METROPOLIS_TEST_TIMEOUT_SCALE).
const (
	// bootstrapTimeout is from node 0's start until its curator issues the
	// owner certificate: firmware, kernel, storage set-up, etcd and the
	// curator, about 1-2 minutes.
	bootstrapTimeout = 6 * time.Minute
	// registerTimeout is from the start of the other nodes until all of
	// them registered; extraNodeTimeout is added for each node booting at
	// the same time, as they share the host's CPUs.
	registerTimeout  = 6 * time.Minute
	extraNodeTimeout = 2 * time.Minute
	// upTimeout is from approval until every node is UP and HEALTHY.
	upTimeout = 5 * time.Minute
	// rebootTimeout is from a node's restart until it is HEALTHY again.
	rebootTimeout = 6 * time.Minute
	// consensusTimeout is from a role change until the new consensus member
	// is a full etcd voter.
	consensusTimeout = 5 * time.Minute
	// rolesRetryTimeout bounds retrying UpdateNodeRoles while the cluster
	// settles.
	rolesRetryTimeout = 30 * time.Second
	// callTimeout bounds each call a wait makes, so that one hanging call
	// does not use up the whole wait.
	callTimeout = 20 * time.Second
	// pollInterval is how often waits check their condition.
	pollInterval = time.Second
)

// permanentError ends a wait early: the condition cannot become true.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// permanent marks err as ending a wait.
func permanent(err error) error { return permanentError{err} }

// poll calls check every pollInterval until it returns nil, a permanent
// error, ctx is done or qemu.Timeout(timeout) passed, and returns nil or why
// it gave up. what describes the condition, as in "node 1 is UP". Waits also
// end as soon as the VM of a node in watch ends, since nothing the node was
// to do can happen then. Errors of giving up name check's last error and
// show the console's last lines of the watched nodes.
func (c *Cluster) poll(ctx context.Context, what string, timeout time.Duration, watch []*machine, check func(ctx context.Context) error) error {
	scaled := qemu.Timeout(timeout)
	deadline, cancel := context.WithTimeout(ctx, scaled)
	defer cancel()
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	var last error
	for {
		if err := c.checkSwitch(); err != nil {
			return fmt.Errorf("waiting until %s: %w", what, err)
		}
		for _, m := range watch {
			if err := m.checkAlive(); err != nil {
				return fmt.Errorf("waiting until %s: %w", what, err)
			}
		}
		callCtx, cancelCall := context.WithTimeout(deadline, qemu.Timeout(callTimeout))
		last = check(callCtx)
		cancelCall()
		var p permanentError
		switch {
		case last == nil:
			return nil
		case errors.As(last, &p):
			return fmt.Errorf("waiting until %s: %w", what, p.err)
		}
		select {
		case <-ticker.C:
		case <-deadline.Done():
			if ctx.Err() != nil {
				return fmt.Errorf("waiting until %s: %w (last: %v)", what, context.Cause(ctx), last)
			}
			return fmt.Errorf("gave up waiting until %s after %s (base %s × %s %g); last error: %w%s",
				what, scaled, timeout, qemu.TimeoutScaleEnv, qemu.TimeoutScale(), last, consoleTails(watch))
		}
	}
}

// consoleTails describes the consoles' last lines of the machines, for
// errors.
func consoleTails(ms []*machine) string {
	var b strings.Builder
	for _, m := range ms {
		if vm := m.running(); vm != nil {
			b.WriteString("\n")
			b.WriteString(consoleTail(vm, tailLines))
		}
	}
	return b.String()
}

// step logs the start of a step of a launch and, through done, its end with
// the time it took.
type step struct {
	logf  func(string, ...any)
	name  string
	start time.Time
}

func (c *Cluster) beginStep(format string, args ...any) *step {
	s := &step{logf: c.opts.Logf, name: fmt.Sprintf(format, args...), start: time.Now()}
	s.logf("%s...", s.name)
	return s
}

// done logs that the step finished and returns how long it took.
func (s *step) done() time.Duration {
	d := time.Since(s.start)
	s.logf("%s: done in %s.", s.name, d.Round(100*time.Millisecond))
	return d
}
