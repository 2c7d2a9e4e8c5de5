package bringup

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

// forwardedSignals are passed on to the program: SIGTERM asks it to stop,
// SIGINT is what the kernel sends PID 1 on ctrl-alt-del (see runInit),
// SIGPWR asks it to stop and the machine to power off.
var forwardedSignals = []os.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGPWR}

// exitPowerOff is the program's exit status that makes PID 1 power the
// machine off rather than restart it.
const exitPowerOff = 64

// ignoredSignals would make the Go runtime exit PID 1, and with it panic
// the kernel, if nothing handled them.
var ignoredSignals = []os.Signal{unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2}

// runInit is the init role: it runs the program as its only child, reaps
// every process, and reboots once the program has exited. It never
// returns.
func runInit() {
	// Without this the kernel reboots at once on ctrl-alt-del; with it,
	// the kernel sends SIGINT, which the program handles by stopping
	// gracefully.
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF); err != nil {
		fmt.Fprintf(os.Stderr, "init: disabling the ctrl-alt-del reboot: %v\n", err)
	}
	signals := notifyInitSignals()
	exe, err := os.Executable()
	if err != nil {
		// /proc is not mounted yet when the kernel starts us directly;
		// the path we were started as is the executable then.
		exe = os.Args[0]
	}
	status, err := superviseChild(exe, os.Args, os.Environ(), signals, os.Stderr, nil)
	switch {
	case err != nil:
		fmt.Fprintf(os.Stderr, "init: %v; rebooting\n", err)
	case status.Exited() && status.ExitStatus() == exitPowerOff:
		fmt.Fprintf(os.Stderr, "init: %s asked to power off; powering off\n", exe)
		haltNow(unix.LINUX_REBOOT_CMD_POWER_OFF)
	default:
		fmt.Fprintf(os.Stderr, "init: %s %s; rebooting\n", exe, describeStatus(status))
	}
	haltNow(unix.LINUX_REBOOT_CMD_RESTART)
}

// notifyInitSignals returns the signals PID 1 handles: those it forwards
// and those it ignores.
func notifyInitSignals() <-chan os.Signal {
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, append(slices.Clone(forwardedSignals), ignoredSignals...)...)
	return signals
}

// superviseChild starts path with argv and env, passing it this process's
// standard input, output and error, and waits for it to exit, reaping every
// other child that ends in the meantime (with reaped, if not nil, told
// about each). Signals received on signals are forwarded to the child if
// they are among forwardedSignals, and noted on log otherwise.
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
			if !ok || !slices.Contains(forwardedSignals, s) {
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
