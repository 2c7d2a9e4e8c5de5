package supervisor

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"metropolis.dev/osbase/logtree"
)

func TestSimple(t *testing.T) {
	dns := make(chan logtree.DN, 3)
	child := func(ctx context.Context) error {
		dns <- DN(ctx)
		return blockHealthy(ctx)
	}
	s, _, _ := startTree(t, func(ctx context.Context) error {
		dns <- DN(ctx)
		if err := Run(ctx, "a", child); err != nil {
			return err
		}
		if err := Run(ctx, "b", child); err != nil {
			return err
		}
		return blockHealthy(ctx)
	})
	for _, dn := range []logtree.DN{"root", "root.a", "root.b"} {
		waitState(t, s, dn, StateHealthy)
	}
	seen := map[logtree.DN]bool{}
	for range 3 {
		seen[recv(t, dns)] = true
	}
	if !seen["root"] || !seen["root.a"] || !seen["root.b"] {
		t.Errorf("runnables saw DNs %v", seen)
	}
}

func TestDone(t *testing.T) {
	childCtx := make(chan context.Context, 1)
	s, _, _ := startTree(t, func(ctx context.Context) error {
		err := Run(ctx, "oneshot", func(ctx context.Context) error {
			Signal(ctx, SignalDone)
			return nil
		})
		if err != nil {
			return err
		}
		err = Run(ctx, "parent", func(ctx context.Context) error {
			err := Run(ctx, "child", func(ctx context.Context) error {
				childCtx <- ctx
				return blockHealthy(ctx)
			})
			if err != nil {
				return err
			}
			Signal(ctx, SignalDone)
			return nil
		})
		if err != nil {
			return err
		}
		return blockHealthy(ctx)
	})

	returned := func(n NodeStatus) bool { return n.State == StateDone && !n.Running }
	for _, dn := range []logtree.DN{"root.oneshot", "root.parent"} {
		if n := waitNode(t, s, dn, "DONE and returned", returned); n.Restarts != 0 || n.LastError != "" {
			t.Errorf("%s: restarts %d, last error %q, want 0 and none", dn, n.Restarts, n.LastError)
		}
	}
	// The children of a finished runnable keep running in its context.
	waitState(t, s, "root.parent.child", StateHealthy)
	if err := recv(t, childCtx).Err(); err != nil {
		t.Errorf("child of DONE runnable has canceled context: %v", err)
	}
}

func TestNilWithoutDoneRestarts(t *testing.T) {
	var runs atomic.Int32
	s, _, _ := startTree(t, func(ctx context.Context) error {
		if err := Run(ctx, "lazy", func(ctx context.Context) error {
			runs.Add(1)
			return nil
		}); err != nil {
			return err
		}
		return blockHealthy(ctx)
	})
	n := waitNode(t, s, "root.lazy", "restarted twice", func(n NodeStatus) bool { return n.Restarts >= 2 })
	if !strings.Contains(n.LastError, "without signalling Done") {
		t.Errorf("last error %q does not mention the missing Done", n.LastError)
	}
	// The second restart was caused by the second run returning.
	if r := runs.Load(); r < 2 {
		t.Errorf("runnable ran %d times, want at least 2", r)
	}
}

func TestErrorRestarts(t *testing.T) {
	var runs atomic.Int32
	s, _, _ := startTree(t, func(ctx context.Context) error {
		if err := Run(ctx, "flaky", func(ctx context.Context) error {
			if runs.Add(1) == 1 {
				return errors.New("boom")
			}
			return blockHealthy(ctx)
		}); err != nil {
			return err
		}
		return blockHealthy(ctx)
	})
	n := waitNode(t, s, "root.flaky", "restarted and healthy", func(n NodeStatus) bool {
		return n.State == StateHealthy && n.Restarts == 1
	})
	if n.LastError != "boom" {
		t.Errorf("last error %q, want boom", n.LastError)
	}
	if root, _ := find(s.Snapshot(), "root"); root.Restarts != 0 || root.State != StateHealthy {
		t.Errorf("parent of failed runnable is %s with %d restarts, want untouched", root.State, root.Restarts)
	}
}

func TestRootRestarts(t *testing.T) {
	var runs atomic.Int32
	s, _, _ := startTree(t, func(ctx context.Context) error {
		if runs.Add(1) == 1 {
			return errors.New("root failure")
		}
		return blockHealthy(ctx)
	})
	n := waitNode(t, s, "root", "restarted and healthy", func(n NodeStatus) bool {
		return n.State == StateHealthy && n.Restarts == 1
	})
	if n.LastError != "root failure" {
		t.Errorf("last error %q, want root failure", n.LastError)
	}
}

func TestGroupRestartsTogether(t *testing.T) {
	var aRuns, bRuns atomic.Int32
	bCtxs := make(chan context.Context, 10)
	s, _, _ := startTree(t, func(ctx context.Context) error {
		err := RunGroup(ctx, map[string]Runnable{
			"a": func(ctx context.Context) error {
				if aRuns.Add(1) == 1 {
					Signal(ctx, SignalHealthy)
					return errors.New("a failed")
				}
				return blockHealthy(ctx)
			},
			"b": func(ctx context.Context) error {
				bRuns.Add(1)
				bCtxs <- ctx
				return blockHealthy(ctx)
			},
		})
		if err != nil {
			return err
		}
		if err := Run(ctx, "bystander", blockHealthy); err != nil {
			return err
		}
		return blockHealthy(ctx)
	})

	for _, dn := range []logtree.DN{"root.a", "root.b"} {
		waitNode(t, s, dn, "restarted and healthy", func(n NodeStatus) bool {
			return n.State == StateHealthy && n.Restarts == 1
		})
	}
	if err := recv(t, bCtxs).Err(); !errors.Is(err, context.Canceled) {
		t.Errorf("first incarnation of b: context error %v, want canceled", err)
	}
	if n := bRuns.Load(); n != 2 {
		t.Errorf("b ran %d times, want 2", n)
	}
	snap := s.Snapshot()
	if b, _ := find(snap, "root.b"); !strings.Contains(b.LastError, "group member root.a died: a failed") {
		t.Errorf("b's last error %q does not blame a", b.LastError)
	}
	if by, _ := find(snap, "root.bystander"); by.Restarts != 0 {
		t.Errorf("runnable outside the group restarted %d times", by.Restarts)
	}
}

// TestRestartWaitsForSubtree checks that a dead runnable's children are
// canceled, and that it is only restarted once all of them have returned.
func TestRestartWaitsForSubtree(t *testing.T) {
	var parentRuns atomic.Int32
	release := make(chan struct{})
	grandchildCtx := make(chan context.Context, 1)
	fail := make(chan struct{})
	s, _, _ := startTree(t, func(ctx context.Context) error {
		if err := Run(ctx, "parent", func(ctx context.Context) error {
			if parentRuns.Add(1) > 1 {
				return blockHealthy(ctx)
			}
			err := Run(ctx, "stubborn", func(ctx context.Context) error {
				if err := Run(ctx, "grandchild", func(ctx context.Context) error {
					grandchildCtx <- ctx
					return blockHealthy(ctx)
				}); err != nil {
					return err
				}
				Signal(ctx, SignalHealthy)
				<-ctx.Done()
				// Ignores cancellation until the test says otherwise.
				<-release
				return nil
			})
			if err != nil {
				return err
			}
			Signal(ctx, SignalHealthy)
			<-fail
			return errors.New("parent failed")
		}); err != nil {
			return err
		}
		return blockHealthy(ctx)
	})

	waitState(t, s, "root.parent.stubborn.grandchild", StateHealthy)
	close(fail)
	waitState(t, s, "root.parent", StateDead)
	if err := recv(t, grandchildCtx).Err(); !errors.Is(err, context.Canceled) {
		t.Errorf("grandchild of dead runnable: context error %v, want canceled", err)
	}
	waitNode(t, s, "root.parent.stubborn.grandchild", "CANCELED and returned", func(n NodeStatus) bool {
		return n.State == StateCanceled && !n.Running
	})
	stubborn := waitState(t, s, "root.parent.stubborn", StateCanceled)
	if !stubborn.Running {
		t.Fatalf("stubborn runnable returned before being released")
	}

	// The backoff is a millisecond, so a restart not waiting for stubborn
	// would happen well within this time.
	time.Sleep(100 * time.Millisecond)
	if n, _ := find(s.Snapshot(), "root.parent"); n.State != StateDead || parentRuns.Load() != 1 {
		t.Fatalf("parent restarted while its child was still running: %s, %d runs", n.State, parentRuns.Load())
	}

	close(release)
	waitNode(t, s, "root.parent", "restarted and healthy", func(n NodeStatus) bool {
		return n.State == StateHealthy && n.Restarts == 1
	})
	// The restarted parent starts without the children of its previous
	// incarnation.
	if _, ok := find(s.Snapshot(), "root.parent.stubborn"); ok {
		t.Errorf("children of previous incarnation still in tree: %s", formatSnapshot(s.Snapshot()))
	}
}

func TestPanicRestarts(t *testing.T) {
	var runs atomic.Int32
	s, lt, _ := startTree(t, func(ctx context.Context) error {
		if err := Run(ctx, "panicky", func(ctx context.Context) error {
			if runs.Add(1) == 1 {
				panic("something unexpected")
			}
			return blockHealthy(ctx)
		}); err != nil {
			return err
		}
		return blockHealthy(ctx)
	})
	n := waitNode(t, s, "root.panicky", "restarted and healthy", func(n NodeStatus) bool {
		return n.State == StateHealthy && n.Restarts == 1
	})
	if n.LastError != "panic: something unexpected" {
		t.Errorf("last error %q, want the panic", n.LastError)
	}
	var logged bool
	for _, l := range logLines(t, lt, "root.panicky") {
		// The stack must lead to the panicking code.
		if strings.Contains(l, "something unexpected") && strings.Contains(l, "supervisor_test.go") {
			logged = true
		}
	}
	if !logged {
		t.Errorf("panic with stack not logged, logs: %q", logLines(t, lt, "root.panicky"))
	}
}

func TestGoexitRestarts(t *testing.T) {
	var runs atomic.Int32
	s, _, _ := startTree(t, func(ctx context.Context) error {
		if runs.Add(1) == 1 {
			runtime.Goexit()
		}
		return blockHealthy(ctx)
	})
	n := waitNode(t, s, "root", "restarted and healthy", func(n NodeStatus) bool {
		return n.State == StateHealthy && n.Restarts == 1
	})
	if !strings.Contains(n.LastError, "Goexit") {
		t.Errorf("last error %q does not mention Goexit", n.LastError)
	}
}

func TestShutdownCancelsEverything(t *testing.T) {
	ctxs := make(chan context.Context, 3)
	track := func(next Runnable) Runnable {
		return func(ctx context.Context) error {
			ctxs <- ctx
			return next(ctx)
		}
	}
	s, _, cancel := startTree(t, track(func(ctx context.Context) error {
		if err := Run(ctx, "a", track(func(ctx context.Context) error {
			if err := Run(ctx, "b", track(blockHealthy)); err != nil {
				return err
			}
			Signal(ctx, SignalDone)
			return nil
		})); err != nil {
			return err
		}
		return blockHealthy(ctx)
	}))
	waitState(t, s, "root.a.b", StateHealthy)
	cancel()
	select {
	case <-s.Done():
	case <-time.After(waitTimeout):
		t.Fatalf("supervisor did not stop")
	}
	for range 3 {
		if err := recv(t, ctxs).Err(); !errors.Is(err, context.Canceled) {
			t.Errorf("context of a runnable not canceled: %v", err)
		}
	}
	snap := s.Snapshot()
	if len(snap) != 3 {
		t.Fatalf("final tree has %d nodes, want 3: %s", len(snap), formatSnapshot(snap))
	}
	for _, n := range snap {
		if n.State != StateCanceled || n.Running {
			t.Errorf("after shutdown: %s is %s, running %v", n.DN, n.State, n.Running)
		}
	}
}

func TestNames(t *testing.T) {
	type result struct {
		what string
		err  error
	}
	results := make(chan []result, 1)
	s, _, _ := startTree(t, func(ctx context.Context) error {
		var res []result
		try := func(what string, err error) { res = append(res, result{what, err}) }
		try("Run a", Run(ctx, "a", blockHealthy))
		try("Run a again", Run(ctx, "a", blockHealthy))
		try("RunGroup with a", RunGroup(ctx, map[string]Runnable{"a": blockHealthy, "c": blockHealthy}))
		_, err := SubLogger(ctx, "a")
		try("SubLogger a", err)
		_, err = SubLogger(ctx, "log")
		try("SubLogger log", err)
		_, err = SubLogger(ctx, "log")
		try("SubLogger log again", err)
		try("Run log", Run(ctx, "log", blockHealthy))
		try("RunGroup empty", RunGroup(ctx, map[string]Runnable{}))
		try("Run nil", Run(ctx, "nil", nil))
		for _, name := range []string{"", "A", "a.b", "a b", ".", "ü", "root.x"} {
			try("Run "+name, Run(ctx, name, blockHealthy))
			_, err := SubLogger(ctx, name)
			try("SubLogger "+name, err)
		}
		try("Run ok-name_1", Run(ctx, "ok-name_1", blockHealthy))
		results <- res
		return blockHealthy(ctx)
	})
	valid := map[string]bool{"Run a": true, "SubLogger log": true, "Run ok-name_1": true}
	for _, r := range recv(t, results) {
		if valid[r.what] && r.err != nil {
			t.Errorf("%s: unexpected error %v", r.what, r.err)
		}
		if !valid[r.what] && r.err == nil {
			t.Errorf("%s: succeeded, want error", r.what)
		}
	}
	// A failed RunGroup must not have started any of its members.
	waitState(t, s, "root.ok-name_1", StateHealthy)
	if _, ok := find(s.Snapshot(), "root.c"); ok {
		t.Errorf("member of rejected group was started")
	}
}

func TestNamesFreedOnRestart(t *testing.T) {
	var runs atomic.Int32
	s, _, _ := startTree(t, func(ctx context.Context) error {
		if err := Run(ctx, "a", blockHealthy); err != nil {
			return err
		}
		if _, err := SubLogger(ctx, "log"); err != nil {
			return err
		}
		if runs.Add(1) == 1 {
			return errors.New("restart once")
		}
		return blockHealthy(ctx)
	})
	n := waitNode(t, s, "root", "restarted and healthy", func(n NodeStatus) bool {
		return n.State == StateHealthy && n.Restarts == 1
	})
	if n.LastError != "restart once" {
		t.Errorf("root's last error %q, want the planned restart", n.LastError)
	}
}

// TestLeftoverContexts checks calls with the context of an incarnation that
// has returned or has been replaced, as made by goroutines a runnable left
// behind.
func TestLeftoverContexts(t *testing.T) {
	ctxs := make(chan context.Context, 2)
	var runs atomic.Int32
	s, _, _ := startTree(t, func(ctx context.Context) error {
		if err := Run(ctx, "oneshot", func(ctx context.Context) error {
			ctxs <- ctx
			Signal(ctx, SignalDone)
			return nil
		}); err != nil {
			return err
		}
		if err := Run(ctx, "restarted", func(ctx context.Context) error {
			if runs.Add(1) == 1 {
				ctxs <- ctx
				return errors.New("first run fails")
			}
			return blockHealthy(ctx)
		}); err != nil {
			return err
		}
		return blockHealthy(ctx)
	})

	waitNode(t, s, "root.oneshot", "DONE and returned", func(n NodeStatus) bool {
		return n.State == StateDone && !n.Running
	})
	waitNode(t, s, "root.restarted", "restarted and healthy", func(n NodeStatus) bool {
		return n.State == StateHealthy && n.Restarts == 1
	})
	for range 2 {
		ctx := recv(t, ctxs)
		if err := Run(ctx, "late", blockHealthy); err == nil {
			t.Errorf("%s: Run with leftover context succeeded", DN(ctx))
		}
		Signal(ctx, SignalHealthy)
		Signal(ctx, SignalDone)
	}
	snap := s.Snapshot()
	if n, _ := find(snap, "root.oneshot"); n.State != StateDone {
		t.Errorf("leftover signals changed finished runnable to %s", n.State)
	}
	if n, _ := find(snap, "root.restarted"); n.State != StateHealthy {
		t.Errorf("leftover signals changed restarted runnable to %s", n.State)
	}
	if _, ok := find(snap, "root.oneshot.late"); ok {
		t.Errorf("child started from leftover context")
	}
}

func TestSnapshot(t *testing.T) {
	inside := make(chan []NodeStatus, 1)
	start := time.Now()
	s, _, _ := startTree(t, func(ctx context.Context) error {
		for _, name := range []string{"b", "a"} {
			if err := Run(ctx, name, func(ctx context.Context) error {
				if err := Run(ctx, "x", blockHealthy); err != nil {
					return err
				}
				return blockHealthy(ctx)
			}); err != nil {
				return err
			}
		}
		if err := Run(ctx, "a-b", func(ctx context.Context) error {
			select {
			case inside <- Snapshot(ctx):
			default:
			}
			return errors.New("failed on purpose")
		}); err != nil {
			return err
		}
		return blockHealthy(ctx)
	})
	if snap := recv(t, inside); len(snap) == 0 {
		t.Errorf("snapshot from inside a runnable is empty")
	}
	waitNode(t, s, "root.a-b", "restarted", func(n NodeStatus) bool { return n.Restarts >= 1 })
	for _, dn := range []logtree.DN{"root", "root.a", "root.a.x", "root.b", "root.b.x"} {
		waitState(t, s, dn, StateHealthy)
	}

	snap := s.Snapshot()
	var dns []logtree.DN
	for _, n := range snap {
		dns = append(dns, n.DN)
		if n.Since.Before(start) || n.Since.After(time.Now()) {
			t.Errorf("%s: Since %v not during the test", n.DN, n.Since)
		}
	}
	want := []logtree.DN{"root", "root.a", "root.a.x", "root.a-b", "root.b", "root.b.x"}
	if len(dns) != len(want) {
		t.Fatalf("snapshot has DNs %v, want %v", dns, want)
	}
	for i := range want {
		if dns[i] != want[i] {
			t.Fatalf("snapshot has DNs %v, want %v", dns, want)
		}
	}
	ab, _ := find(snap, "root.a-b")
	if ab.LastError != "failed on purpose" || ab.Restarts < 1 {
		t.Errorf("root.a-b: last error %q, restarts %d", ab.LastError, ab.Restarts)
	}
	if a, _ := find(snap, "root.a"); a.LastError != "" || a.Restarts != 0 || !a.Running {
		t.Errorf("root.a: %+v, want running without errors", a)
	}
}

func TestLoggers(t *testing.T) {
	type loggers struct {
		lt   *logtree.LogTree
		dn   logtree.DN
		errs []error
	}
	got := make(chan loggers, 1)
	s, lt, _ := startTree(t, func(ctx context.Context) error {
		Logger(ctx).Infof("leveled %d", 1)
		Slog(ctx).Info("from slog", "key", "value")
		_, err := RawLogger(ctx).Write([]byte("raw line\n"))
		res := loggers{lt: LogTree(ctx), dn: DN(ctx), errs: []error{err}}
		sub, err := SubLogger(ctx, "part")
		res.errs = append(res.errs, err)
		if err == nil {
			sub.Info("from sub-logger")
		}
		MustSubLogger(ctx, "other").Info("from other sub-logger")
		got <- res
		return blockHealthy(ctx)
	})
	res := recv(t, got)
	if res.lt != lt || res.dn != "root" {
		t.Errorf("LogTree/DN in root: %p/%q, want %p/root", res.lt, res.dn, lt)
	}
	for _, err := range res.errs {
		if err != nil {
			t.Errorf("logging setup failed: %v", err)
		}
	}
	waitState(t, s, "root", StateHealthy)

	lines := strings.Join(logLines(t, lt, "root"), "\n")
	for _, want := range []string{"leveled 1", "from slog", "key=value", "raw line"} {
		if !strings.Contains(lines, want) {
			t.Errorf("root log %q lacks %q", lines, want)
		}
	}
	if l := logLines(t, lt, "root.part"); len(l) != 1 || l[0] != "from sub-logger" {
		t.Errorf("sub-logger log: %q", l)
	}
	if l := logLines(t, lt, "root.other"); len(l) != 1 || l[0] != "from other sub-logger" {
		t.Errorf("other sub-logger log: %q", l)
	}
	// The supervisor tells the story of the tree in its own DN.
	sup := strings.Join(logLines(t, lt, "supervisor"), "\n")
	if !strings.Contains(sup, "root: NEW -> HEALTHY") {
		t.Errorf("supervisor log lacks the state change of root: %q", sup)
	}
}

func TestOutsideRunnablePanics(t *testing.T) {
	for name, f := range map[string]func(){
		"Logger": func() { Logger(context.Background()) },
		"Signal": func() { Signal(context.Background(), SignalHealthy) },
		"Run":    func() { _ = Run(context.Background(), "a", blockHealthy) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s outside of a runnable did not panic", name)
				}
			}()
			f()
		}()
	}
}
