package supervisor

import (
	"context"
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

const defaultGracePeriod = 10 * time.Second

type runCommandOptions struct {
	signalHealthy bool
	doneOnSuccess bool
	gracePeriod   time.Duration
}

// RunCommandOption configures RunCommand.
type RunCommandOption func(*runCommandOptions)

// NoHealthySignal keeps RunCommand from signalling Healthy once the process
// has started, for runnables which know better when the process is ready
// (eg. by probing it) and signal themselves.
func NoHealthySignal() RunCommandOption {
	return func(o *runCommandOptions) { o.signalHealthy = false }
}

// DoneOnSuccess makes a process which exits with status 0 signal Done and
// return nil, for one-shot commands (eg. mkfs) whose successful completion is
// the runnable's work.
func DoneOnSuccess() RunCommandOption {
	return func(o *runCommandOptions) { o.doneOnSuccess = true }
}

// GracePeriod sets how long a process may take to exit after SIGTERM before
// it is killed with SIGKILL.
func GracePeriod(d time.Duration) RunCommandOption {
	return func(o *runCommandOptions) { o.gracePeriod = d }
}

// RunCommand runs cmd as a supervised process of the runnable owning ctx, and
// returns when the process has exited. It is meant to be the last thing a
// runnable does: `return supervisor.RunCommand(ctx, cmd)`. As an exec.Cmd can
// only be run once, the runnable must build a new one on every start.
//
// The process's stdout and stderr go to the raw log of the runnable, one entry
// per line, replacing whatever they were set to. The process is started in a
// process group of its own, and everything in that group is stopped with it:
// when ctx is canceled with SIGTERM and, after the grace period, SIGKILL; when
// the process exits by itself with SIGKILL, so that nothing it forked
// outlives it.
//
// RunCommand signals Healthy once the process has started, unless
// NoHealthySignal is given. A process exiting with a non-zero status, or by a
// signal, is an error wrapping the *exec.ExitError. A process exiting with
// status 0 is an error too, as a service is not supposed to stop, unless
// DoneOnSuccess is given.
func RunCommand(ctx context.Context, cmd *exec.Cmd, opts ...RunCommandOption) error {
	in := instanceFrom(ctx, "RunCommand")
	o := runCommandOptions{signalHealthy: true, gracePeriod: defaultGracePeriod}
	for _, opt := range opts {
		opt(&o)
	}

	out, err := in.sup.lt.RawFor(in.node.dn)
	if err != nil {
		return err
	}
	// Flushes a last line without a trailing newline.
	defer out.Close()
	cmd.Stdout = out
	cmd.Stderr = out
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// A new session comes with a new process group already, and setpgid
	// fails for session leaders.
	if !cmd.SysProcAttr.Setsid {
		cmd.SysProcAttr.Setpgid = true
	}
	if cmd.WaitDelay == 0 {
		// Wait would otherwise block for as long as anything holds on to
		// the output pipes, eg. a daemonized grandchild.
		cmd.WaitDelay = o.gracePeriod
	}

	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	Logger(ctx).Infof("started %s (pid %d)", cmd.Path, cmd.Process.Pid)
	if o.signalHealthy {
		Signal(ctx, SignalHealthy)
	}

	// The process leads its own group, so the group ID is its PID.
	pgid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	select {
	case err = <-exited:
		killGroup(pgid, syscall.SIGKILL)
	case <-ctx.Done():
		err = stop(ctx, pgid, exited, o.gracePeriod)
		return fmt.Errorf("%s stopped (%v): %w", cmd.Path, err, ctx.Err())
	}

	if err != nil {
		return fmt.Errorf("%s: %w", cmd.Path, err)
	}
	if o.doneOnSuccess {
		Signal(ctx, SignalDone)
		return nil
	}
	return fmt.Errorf("%s exited with status 0", cmd.Path)
}

// stop terminates the process group pgid, whose leader reports its end on
// exited, and returns what it reported.
func stop(ctx context.Context, pgid int, exited <-chan error, grace time.Duration) error {
	killGroup(pgid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case err := <-exited:
		killGroup(pgid, syscall.SIGKILL)
		return err
	case <-t.C:
		Logger(ctx).Warningf("process group %d did not exit within %v of SIGTERM, sending SIGKILL", pgid, grace)
		killGroup(pgid, syscall.SIGKILL)
		return <-exited
	}
}

// killGroup sends sig to every process in the group pgid. Errors are ignored:
// the only one to expect is ESRCH, when the whole group is gone already.
func killGroup(pgid int, sig syscall.Signal) {
	_ = syscall.Kill(-pgid, sig)
}
