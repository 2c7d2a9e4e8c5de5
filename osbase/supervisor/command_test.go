package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"metropolis.dev/osbase/logtree"
)

// runOnce runs cmd (built anew for every start) under "root.cmd" and reports
// the result of its first run. Later runs block, so that failures are not
// retried in a loop.
func runOnce(t *testing.T, cmd func() *exec.Cmd, opts ...RunCommandOption) (*Supervisor, *logtree.LogTree, context.CancelFunc, <-chan error) {
	t.Helper()
	result := make(chan error, 1)
	first := true
	s, lt, cancel := startTree(t, func(ctx context.Context) error {
		return runChild(ctx, "cmd", func(ctx context.Context) error {
			if !first {
				return blockHealthy(ctx)
			}
			first = false
			err := RunCommand(ctx, cmd(), opts...)
			result <- err
			return err
		})
	})
	return s, lt, cancel, result
}

func TestRunCommandOutput(t *testing.T) {
	s, lt, _, result := runOnce(t, func() *exec.Cmd {
		return exec.Command("/bin/sh", "-c", "echo hello; echo world >&2; printf 'no newline'")
	}, DoneOnSuccess())
	if err := recv(t, result); err != nil {
		t.Fatalf("RunCommand: %v", err)
	}
	n := waitNode(t, s, "root.cmd", "DONE and returned", func(n NodeStatus) bool {
		return n.State == StateDone && !n.Running
	})
	if n.Restarts != 0 {
		t.Errorf("successful command restarted %d times", n.Restarts)
	}
	got := logLines(t, lt, "root.cmd", logtree.OnlyRaw())
	want := []string{"hello", "world", "no newline"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("raw log %q, want %q", got, want)
	}
}

func TestRunCommandExitCode(t *testing.T) {
	s, _, _, result := runOnce(t, func() *exec.Cmd {
		return exec.Command("/bin/sh", "-c", "exit 3")
	})
	err := recv(t, result)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("RunCommand returned %v, want exit code 3", err)
	}
	n := waitNode(t, s, "root.cmd", "restarted", func(n NodeStatus) bool { return n.Restarts == 1 })
	if !strings.Contains(n.LastError, "exit status 3") {
		t.Errorf("last error %q lacks the exit status", n.LastError)
	}
}

func TestRunCommandZeroExitIsFailure(t *testing.T) {
	s, _, _, result := runOnce(t, func() *exec.Cmd { return exec.Command("/bin/true") })
	if err := recv(t, result); err == nil || !strings.Contains(err.Error(), "status 0") {
		t.Fatalf("RunCommand returned %v, want an error for the unexpected exit", err)
	}
	waitNode(t, s, "root.cmd", "restarted", func(n NodeStatus) bool { return n.Restarts == 1 })
}

func TestRunCommandStartFailure(t *testing.T) {
	_, _, _, result := runOnce(t, func() *exec.Cmd { return exec.Command("/nonexistent/binary") })
	if err := recv(t, result); err == nil {
		t.Fatalf("RunCommand of a missing binary succeeded")
	}
}

func TestRunCommandTerminatesOnCancel(t *testing.T) {
	s, _, cancel, result := runOnce(t, func() *exec.Cmd { return exec.Command("/bin/sleep", "100") })
	waitState(t, s, "root.cmd", StateHealthy)
	cancel()
	err := recv(t, result)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "signal: terminated") {
		t.Errorf("RunCommand returned %v, want cancellation after SIGTERM", err)
	}
}

// TestRunCommandKillsGroup checks that a process group ignoring SIGTERM is
// killed after the grace period, including the processes it forked.
func TestRunCommandKillsGroup(t *testing.T) {
	const grace = 200 * time.Millisecond
	s, lt, cancel, result := runOnce(t, func() *exec.Cmd {
		// SIG_IGN is inherited, so sleep ignores SIGTERM too.
		return exec.Command("/bin/sh", "-c", `trap "" TERM; sleep 100 & echo $!; wait`)
	}, GracePeriod(grace), NoHealthySignal())

	var pid int
	waitFor(t, "the pid of the forked sleep", func() bool {
		for _, l := range logLines(t, lt, "root.cmd", logtree.OnlyRaw()) {
			if p, err := strconv.Atoi(l); err == nil {
				pid = p
				return true
			}
		}
		return false
	})
	if n, _ := find(s.Snapshot(), "root.cmd"); n.State != StateNew {
		t.Errorf("command with NoHealthySignal is %s, want NEW", n.State)
	}

	stopped := time.Now()
	cancel()
	err := recv(t, result)
	if !strings.Contains(err.Error(), "signal: killed") {
		t.Errorf("RunCommand returned %v, want the process killed", err)
	}
	if d := time.Since(stopped); d < grace {
		t.Errorf("process killed after %v, before the grace period of %v", d, grace)
	}
	waitFor(t, "the forked sleep to be gone", func() bool { return processGone(pid) })
}

// TestRunCommandCleansUpAfterExit checks that processes forked by a command
// do not outlive it.
func TestRunCommandCleansUpAfterExit(t *testing.T) {
	s, lt, _, result := runOnce(t, func() *exec.Cmd {
		return exec.Command("/bin/sh", "-c", "sleep 100 >/dev/null 2>&1 & echo $!")
	}, DoneOnSuccess())
	if err := recv(t, result); err != nil {
		t.Fatalf("RunCommand: %v", err)
	}
	waitState(t, s, "root.cmd", StateDone)
	lines := logLines(t, lt, "root.cmd", logtree.OnlyRaw())
	if len(lines) != 1 {
		t.Fatalf("raw log %q, want the pid of sleep", lines)
	}
	pid, err := strconv.Atoi(lines[0])
	if err != nil {
		t.Fatalf("raw log %q, want the pid of sleep", lines)
	}
	waitFor(t, "the forked sleep to be gone", func() bool { return processGone(pid) })
}

// processGone returns whether pid has exited. Orphans are reaped by whatever
// runs as PID 1, which may never do so, so a zombie counts as gone.
func processGone(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name, which is in parentheses.
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z'
}

// TestKilledCommandRestarts kills a supervised process from outside, as an
// operator or the OOM killer would, and expects the supervisor to log why
// the runnable died and to start the process again.
func TestKilledCommandRestarts(t *testing.T) {
	s, lt, _ := startTree(t, func(ctx context.Context) error {
		return runChild(ctx, "cmd", func(ctx context.Context) error {
			return RunCommand(ctx, exec.Command("/bin/sh", "-c", "echo $$; exec sleep 1000"))
		})
	})
	pids := func(want int) []string {
		t.Helper()
		deadline := time.Now().Add(waitTimeout)
		for {
			got := logLines(t, lt, "root.cmd", logtree.OnlyRaw())
			if len(got) >= want {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("waited for %d started processes, saw %q", want, got)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	first, err := strconv.Atoi(pids(1)[0])
	if err != nil {
		t.Fatalf("supervised process printed no PID: %v", err)
	}
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatalf("killing the supervised process: %v", err)
	}
	if second := pids(2)[1]; second == strconv.Itoa(first) {
		t.Fatalf("restarted process has the killed process's PID %d", first)
	}
	waitNode(t, s, "root.cmd", "HEALTHY after one restart", func(n NodeStatus) bool {
		return n.State == StateHealthy && n.Restarts == 1
	})
	supervisorLog := logLines(t, lt, "supervisor")
	var restartLogged bool
	for _, l := range supervisorLog {
		if strings.Contains(l, "root.cmd") && strings.Contains(l, "killed") && strings.Contains(l, "restarting in") {
			restartLogged = true
		}
	}
	if !restartLogged {
		t.Errorf("supervisor log does not say root.cmd was killed and is restarting: %q", supervisorLog)
	}
}
