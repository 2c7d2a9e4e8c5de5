package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingTB records what the harness logs, on top of logging it.
type recordingTB struct {
	testing.TB
	mu    sync.Mutex
	lines []string
}

func (r *recordingTB) Log(args ...any) {
	r.mu.Lock()
	r.lines = append(r.lines, fmt.Sprint(args...))
	r.mu.Unlock()
	r.TB.Log(args...)
}

func TestHarnessLogsAndStops(t *testing.T) {
	rec := &recordingTB{}
	var runCtx context.Context
	t.Run("inner", func(t *testing.T) {
		rec.TB = t
		ctxs := make(chan context.Context, 1)
		_, lt := TestHarness(rec, func(ctx context.Context) error {
			Logger(ctx).Info("hello from the runnable")
			Signal(ctx, SignalHealthy)
			ctxs <- ctx
			<-ctx.Done()
			return ctx.Err()
		})
		if lt == nil {
			t.Fatalf("no log tree")
		}
		runCtx = recv(t, ctxs)
	})
	// The inner test's cleanup has stopped the tree and flushed its logs.
	if runCtx == nil || runCtx.Err() == nil {
		t.Fatalf("runnable not stopped at the end of its test")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	all := strings.Join(rec.lines, "\n")
	for _, want := range []string{"root I", "hello from the runnable", "root: NEW -> HEALTHY", "root: HEALTHY -> CANCELED"} {
		if !strings.Contains(all, want) {
			t.Errorf("harness log lacks %q:\n%s", want, all)
		}
	}
}

func TestHarnessCancel(t *testing.T) {
	stopped := make(chan error, 1)
	cancel, _ := TestHarness(t, func(ctx context.Context) error {
		Signal(ctx, SignalHealthy)
		<-ctx.Done()
		stopped <- ctx.Err()
		return ctx.Err()
	})
	cancel()
	if err := recv(t, stopped); !errors.Is(err, context.Canceled) {
		t.Errorf("runnable context: %v, want canceled", err)
	}
}

// TestPropagatePanic runs itself in a child process, in which a panicking
// runnable must crash the program.
func TestPropagatePanic(t *testing.T) {
	const env = "SUPERVISOR_TEST_PROPAGATE_PANIC"
	if os.Getenv(env) != "" {
		s := New(context.Background(), func(ctx context.Context) error {
			panic("propagated panic")
		}, WithPropagatePanic())
		select {
		case <-s.Done():
		case <-time.After(waitTimeout):
		}
		t.Fatalf("panic did not crash the program")
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestPropagatePanic$")
	cmd.Env = append(os.Environ(), env+"=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child test did not fail: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "panic: propagated panic") {
		t.Errorf("child test did not crash with the panic:\n%s", out)
	}
}
