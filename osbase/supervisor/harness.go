package supervisor

import (
	"context"
	"testing"

	"metropolis.dev/osbase/logtree"
)

// TestHarness runs r as the root of a supervision tree for the duration of a
// test, for testing runnables of other packages. It returns a function
// stopping the tree early and the log tree it logs into.
//
// Every log entry of the tree, including the supervisor's own account of
// state changes, is passed to t.Log. When the test ends, the tree is stopped
// and waited for, so runnables cannot outlive their test.
//
// Panics in runnables crash the test binary instead of restarting the
// runnable, so that they are not missed. Failures of r (or its children) are
// supervised as usual: logged and restarted, not turned into test failures, as
// tests of restart behaviour depend on them. Tests check the outcome they
// expect themselves. opts are applied after the harness's own options, eg. to
// shorten the backoff.
func TestHarness(t testing.TB, r Runnable, opts ...SupervisorOpt) (context.CancelFunc, *logtree.LogTree) {
	t.Helper()
	lt := logtree.New()
	// Reading the root of the log tree covers both the runnables and the
	// supervisor's own log.
	reader, err := lt.Read("", logtree.WithChildren(), logtree.WithStream())
	if err != nil {
		t.Fatalf("reading log tree: %v", err)
	}
	printed := make(chan struct{})
	go func() {
		defer close(printed)
		for e := range reader.Stream {
			t.Log(e.String())
		}
	}()

	ctx, cancel := context.WithCancel(context.Background())
	opts = append([]SupervisorOpt{WithExistingLogtree(lt), WithPropagatePanic()}, opts...)
	s := New(ctx, r, opts...)
	t.Cleanup(func() {
		cancel()
		s.Wait()
		// Entries are delivered synchronously, so every entry of the tree
		// is in the stream by now and is printed before Stream is drained.
		reader.Close()
		<-printed
		if n := reader.Missed(); n > 0 {
			t.Logf("%d log entries were dropped because the test log could not keep up", n)
		}
	})
	return cancel, lt
}
