// Package pid1 is the init of a system whose work is done by one program:
// PID 1 runs that program as its only child, forwards SIGTERM, SIGINT and
// SIGPWR to it, reaps every process that ends, and reboots the machine when
// the program exits, for whatever reason, unless it exits with ExitPowerOff.
//
// PID 1 inherits every orphaned process of the system and must reap them,
// or they stay zombies forever. The only way to reap a process one does not
// know about is wait4(-1), which takes the exit status of whichever child
// ended. In a program that also runs commands through os/exec, as a
// supervision tree does, that steals the status exec.Cmd.Wait is waiting
// for: Wait then fails with ECHILD, and a supervised process that exited
// with status 1 looks like one whose status was lost. No ordering fixes
// this, as both waits race in the kernel. Keeping a registry of our own
// children does not either, as libraries start processes without telling
// it.
//
// So PID 1 never starts processes that anything waits for: it runs one
// child, the program, and reaps everything. The program's own children are
// its children, not PID 1's, so only exec.Cmd.Wait collects them. Orphans
// (a daemon that forks and whose parent exits) are reparented to PID 1 and
// reaped there, because the program is not a child subreaper.
//
// This package uses nothing but system calls and standard error, and
// imports nothing that has package initialisers of note: a PID 1 that
// exits, or panics, takes the kernel with it, so it does as little as
// possible, and a small init (Metropolis's stage-1, which stays PID 1 after
// switching root) starts the program without first running the program's
// own initialisers once more.
package pid1

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"
)

// ForwardedSignals are passed on to the program: SIGTERM asks it to stop,
// SIGINT is what the kernel sends PID 1 on ctrl-alt-del (see Run), SIGPWR
// asks it to stop and the machine to power off.
var ForwardedSignals = []os.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGPWR}

// ExitPowerOff is the program's exit status that makes PID 1 power the
// machine off rather than restart it.
const ExitPowerOff = 64

// ignoredSignals would make the Go runtime exit PID 1, and with it panic
// the kernel, if nothing handled them.
var ignoredSignals = []os.Signal{unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2}

// Run is PID 1's whole life: it runs the program at path with argv and
// env as its only child, reaps every process, and reboots once the program
// has exited, or powers off if it exited with ExitPowerOff. It never
// returns.
func Run(path string, argv, env []string) {
	// Without this the kernel reboots at once on ctrl-alt-del; with it,
	// the kernel sends SIGINT, which the program handles by stopping
	// gracefully.
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF); err != nil {
		fmt.Fprintf(os.Stderr, "init: disabling the ctrl-alt-del reboot: %v\n", err)
	}
	signals := notifyInitSignals()
	status, err := superviseChild(path, argv, env, signals, os.Stderr, nil)
	switch {
	case err != nil:
		fmt.Fprintf(os.Stderr, "init: %v; rebooting\n", err)
	case status.Exited() && status.ExitStatus() == ExitPowerOff:
		fmt.Fprintf(os.Stderr, "init: %s asked to power off; powering off\n", path)
		haltNow(unix.LINUX_REBOOT_CMD_POWER_OFF)
	default:
		fmt.Fprintf(os.Stderr, "init: %s %s; rebooting\n", path, describeStatus(status))
	}
	haltNow(unix.LINUX_REBOOT_CMD_RESTART)
}

// notifyInitSignals returns the signals PID 1 handles: those it forwards
// and those it ignores.
func notifyInitSignals() <-chan os.Signal {
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, append(slices.Clone(ForwardedSignals), ignoredSignals...)...)
	return signals
}

// superviseChild starts path with argv and env, passing it this process's
// standard input, output and error, and waits for it to exit, reaping every
// other child that ends in the meantime (with reaped, if not nil, told
// about each). Signals received on signals are forwarded to the child if
// they are among ForwardedSignals, and noted on log otherwise.
//
// It waits with wait4(-1), so it must run in a process that starts no
// other children it wants to wait for itself: PID 1, or a child subreaper
// in tests.
func superviseChild(path string, argv, env []string, signals <-chan os.Signal, log io.Writer, reaped func(pid int, status unix.WaitStatus)) (unix.WaitStatus, error) {
	// syscall.ForkExec rather than os.StartProcess: nothing here may hold
	// a handle that waits for the child, or competes with wait4(-1).
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{0, 1, 2},
	})
	if err != nil {
		return 0, fmt.Errorf("starting %s: %w", path, err)
	}
	done := make(chan struct{})
	defer close(done)
	go forwardSignals(pid, signals, done, log)

	for {
		var status unix.WaitStatus
		wpid, err := unix.Wait4(-1, &status, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			// ECHILD cannot happen while the child has not been
			// reaped; anything else is a broken kernel interface.
			return 0, fmt.Errorf("waiting for %s (pid %d): %w", path, pid, err)
		}
		if wpid == pid {
			return status, nil
		}
		if reaped != nil {
			reaped(wpid, status)
		}
	}
}

// forwardSignals passes signals on to pid until done is closed.
func forwardSignals(pid int, signals <-chan os.Signal, done <-chan struct{}, log io.Writer) {
	for {
		select {
		case <-done:
			return
		case s := <-signals:
			sig, ok := s.(syscall.Signal)
			if !ok || !slices.Contains(ForwardedSignals, s) {
				fmt.Fprintf(log, "init: ignoring %v\n", s)
				continue
			}
			if err := unix.Kill(pid, sig); err != nil {
				fmt.Fprintf(log, "init: forwarding %v to pid %d: %v\n", sig, pid, err)
			}
		}
	}
}

// describeStatus says how a process ended, for the console.
func describeStatus(s unix.WaitStatus) string {
	switch {
	case s.Exited():
		return fmt.Sprintf("exited with status %d", s.ExitStatus())
	case s.Signaled() && s.CoreDump():
		return fmt.Sprintf("was killed by %v (core dumped)", s.Signal())
	case s.Signaled():
		return fmt.Sprintf("was killed by %v", s.Signal())
	}
	return fmt.Sprintf("ended with wait status %#x", uint32(s))
}

// haltNow writes out dirty pages and restarts the machine or turns it off
// (cmd is a LINUX_REBOOT_CMD). It never returns: if the kernel refuses,
// there is nothing left to do but wait, as PID 1 must not exit.
func haltNow(cmd int) {
	unix.Sync()
	err := unix.Reboot(cmd)
	fmt.Fprintf(os.Stderr, "init: reboot(%#x): %v\n", cmd, err)
	select {}
}
