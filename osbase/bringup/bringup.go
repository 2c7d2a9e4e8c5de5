package bringup

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"time"

	"golang.org/x/sys/unix"

	"metropolis.dev/osbase/logtree"
	"metropolis.dev/osbase/pid1"
	"metropolis.dev/osbase/supervisor"
)

// Config is what a system's init needs to know.
type Config struct {
	// Root is the root runnable of the supervision tree, DN "root".
	Root supervisor.Runnable
	// Tmpfs lists absolute directories to mount empty tmpfs filesystems
	// on, in addition to /tmp and /run, such as the system's own scratch
	// directories. They must exist or be creatable.
	Tmpfs []string
	// Console chooses what the console shows.
	Console ConsoleOptions
	// SupervisorOptions are passed to supervisor.New, after the option
	// that makes the supervisor log into the tree bringup writes to the
	// console.
	SupervisorOptions []supervisor.SupervisorOpt
}

// LogDN is where bringup logs what it does before and around the
// supervision tree.
const LogDN logtree.DN = "init"

// Timeouts of the program role's way out.
const (
	// shutdownTimeout bounds how long the tree may take to stop after
	// SIGTERM or SIGINT.
	shutdownTimeout = 30 * time.Second
	// drainTimeout bounds how long the console may take to write what it
	// has buffered before the process exits, on a slow serial line.
	drainTimeout = 10 * time.Second
)

// Main brings the system up as described in the package documentation
// and never returns.
func Main(c Config) {
	if os.Getpid() == 1 {
		exe, err := os.Executable()
		if err != nil {
			// /proc is not mounted yet when the kernel starts us
			// directly; the path we were started as is the
			// executable then.
			exe = os.Args[0]
		}
		pid1.Run(exe, os.Args, os.Environ())
	}
	if err := checkStartedByInit(os.Getppid()); err != nil {
		fmt.Fprintf(os.Stderr, "bringup: %v\n", err)
		os.Exit(2)
	}
	os.Exit(runProgram(c, os.Stdout))
}

// checkStartedByInit refuses the program role to a process whose parent is
// not PID 1. The program role mounts over /tmp, /run and /sys/fs/cgroup;
// started by hand on a developer's machine, it would hide that machine's
// own directories instead of preparing a fresh system.
func checkStartedByInit(ppid int) error {
	if ppid != 1 {
		return fmt.Errorf("refusing to run: this program is the init of a system image and runs only as PID 1 or as its child (parent is PID %d)", ppid)
	}
	return nil
}

// runProgram is the program role. It returns the process's exit status
// once the tree has stopped after a signal, or after a fatal error.
func runProgram(c Config, out io.Writer) (status int) {
	if c.Root == nil {
		fmt.Fprintln(out, "bringup: fatal: no root runnable")
		return 1
	}
	lt := logtree.New()
	con, err := startConsole(out, lt, c.Console)
	if err != nil {
		fmt.Fprintf(out, "bringup: fatal: %v\n", err)
		return 1
	}
	log := lt.MustLeveledFor(LogDN)
	// Only the panics of this goroutine end here; the supervisor turns
	// those of runnables into restarts, and any other goroutine's panic
	// makes the runtime print its stack to standard error, the console,
	// and exit, after which the init role reboots all the same.
	defer func() {
		if r := recover(); r != nil {
			con.drain(drainTimeout)
			fmt.Fprintf(out, "bringup: panic: %v\n\n%s\n", r, debug.Stack())
			status = 2
		}
	}()
	if err := bringUp(c, log); err != nil {
		con.drain(drainTimeout)
		fmt.Fprintf(out, "bringup: fatal: %v\n", err)
		return 1
	}

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, pid1.ForwardedSignals...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts := append([]supervisor.SupervisorOpt{supervisor.WithExistingLogtree(lt)}, c.SupervisorOptions...)
	sup := supervisor.New(ctx, c.Root, opts...)

	sig := <-signals
	exitStatus := 0
	if sig == unix.SIGPWR {
		exitStatus = pid1.ExitPowerOff
		log.Warningf("received %v: stopping every runnable, then exiting so that the system powers off", sig)
	} else {
		log.Warningf("received %v: stopping every runnable, then exiting so that the system restarts", sig)
	}
	cancel()
	t := time.NewTimer(shutdownTimeout)
	defer t.Stop()
	select {
	case <-sup.Done():
		log.Info("every runnable has stopped")
	case <-t.C:
		log.Errorf("runnables still running %v after being asked to stop; exiting anyway", shutdownTimeout)
	}
	unix.Sync()
	con.drain(drainTimeout)
	return exitStatus
}

// Reboot asks the system that Main runs in this process to stop every
// runnable gracefully and restart the machine, as SIGTERM does. It returns
// once asked.
func Reboot() error {
	return unix.Kill(os.Getpid(), unix.SIGTERM)
}

// PowerOff asks the system that Main runs in this process to stop every
// runnable gracefully and turn the machine off, as SIGPWR does. It returns
// once asked.
func PowerOff() error {
	return unix.Kill(os.Getpid(), unix.SIGPWR)
}

// bringUp prepares the system for the supervision tree.
func bringUp(c Config, log logtree.LeveledLogger) error {
	if err := mountAll("/", c.Tmpfs, log.Warningf); err != nil {
		return err
	}
	limit, err := raiseFileLimit()
	if err != nil {
		return err
	}
	log.Infof("kernel filesystems mounted, tmpfs on /tmp, /run and %v, RLIMIT_NOFILE %d", c.Tmpfs, limit)
	return nil
}
