package supervisor

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"metropolis.dev/osbase/logtree"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait in the tests. It is generous, as the tests
// run on small shared machines with the race detector.
const waitTimeout = 10 * time.Second

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(waitTimeout)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// recv receives from c, failing the test after waitTimeout.
func recv[T any](t *testing.T, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out receiving from channel")
		panic("unreachable")
	}
}

// fastBackoff keeps restarts quick in tests which do not look at backoff.
var fastBackoff = WithBackoff(time.Millisecond, 10*time.Millisecond)

// startTree runs root under a new supervisor with fast restarts for the
// duration of the test, and dumps the logs if the test fails.
func startTree(t *testing.T, root Runnable, opts ...SupervisorOpt) (*Supervisor, *logtree.LogTree, context.CancelFunc) {
	t.Helper()
	lt := logtree.New()
	ctx, cancel := context.WithCancel(context.Background())
	opts = append([]SupervisorOpt{WithExistingLogtree(lt), fastBackoff}, opts...)
	s := New(ctx, root, opts...)
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.Done():
		case <-time.After(waitTimeout):
			t.Errorf("supervisor did not stop; tree: %s", formatSnapshot(s.Snapshot()))
		}
		if t.Failed() {
			dumpLogs(t, lt)
		}
	})
	return s, lt, cancel
}

func dumpLogs(t *testing.T, lt *logtree.LogTree) {
	r, err := lt.Read("", logtree.WithChildren(), logtree.WithBacklog(logtree.BacklogAllAvailable))
	if err != nil {
		t.Errorf("reading logs: %v", err)
		return
	}
	for _, e := range r.Backlog {
		t.Log(e.String())
	}
}

func formatSnapshot(snap []NodeStatus) string {
	var b strings.Builder
	for _, n := range snap {
		fmt.Fprintf(&b, "\n  %s %s restarts=%d running=%v err=%q", n.DN, n.State, n.Restarts, n.Running, n.LastError)
	}
	return b.String()
}

func find(snap []NodeStatus, dn logtree.DN) (NodeStatus, bool) {
	for _, n := range snap {
		if n.DN == dn {
			return n, true
		}
	}
	return NodeStatus{}, false
}

// waitNode waits until the node dn exists and satisfies cond, and returns it.
func waitNode(t *testing.T, s *Supervisor, dn logtree.DN, what string, cond func(NodeStatus) bool) NodeStatus {
	t.Helper()
	var snap []NodeStatus
	deadline := time.After(waitTimeout)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		snap = s.Snapshot()
		if n, ok := find(snap, dn); ok && cond(n) {
			return n
		}
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s to be %s; tree: %s", dn, what, formatSnapshot(snap))
		case <-tick.C:
		}
	}
}

// waitState waits until dn is in state st, and returns it.
func waitState(t *testing.T, s *Supervisor, dn logtree.DN, st State) NodeStatus {
	t.Helper()
	return waitNode(t, s, dn, st.String(), func(n NodeStatus) bool { return n.State == st })
}

// blockHealthy is a runnable which signals Healthy and runs until canceled.
func blockHealthy(ctx context.Context) error {
	Signal(ctx, SignalHealthy)
	<-ctx.Done()
	return ctx.Err()
}

// runChild is a root runnable which runs r as its only child.
func runChild(ctx context.Context, name string, r Runnable) error {
	if err := Run(ctx, name, r); err != nil {
		return err
	}
	return blockHealthy(ctx)
}

// logLines returns the messages (leveled) or data (raw) of all entries of dn.
func logLines(t *testing.T, lt *logtree.LogTree, dn logtree.DN, opts ...logtree.LogReadOption) []string {
	t.Helper()
	opts = append(opts, logtree.WithBacklog(logtree.BacklogAllAvailable))
	r, err := lt.Read(dn, opts...)
	if err != nil {
		t.Fatalf("reading logs of %s: %v", dn, err)
	}
	var res []string
	for _, e := range r.Backlog {
		res = append(res, e.Text())
	}
	return res
}
