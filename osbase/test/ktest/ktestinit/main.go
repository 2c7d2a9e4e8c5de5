// Command ktestinit is the init of a ktest VM: the kernel runs it as PID 1
// from the initramfs that metropolis.dev/osbase/test/ktest builds. It sets
// up the few filesystems a test expects, loads the kernel modules the test
// asked for, runs the test binary with its output on the console, prints
// the result line the host waits for, and reboots, which ends the VM.
//
// Whatever happens, it ends with a result line: an error of its own is
// reported as a failure, since the host cannot tell a missing line from a
// hung VM before its timeout. If it could not even reboot, it exits,
// which panics the kernel, which the command line makes reboot, which makes
// qemu exit.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	"golang.org/x/sys/unix"

	"metropolis.dev/osbase/kmod"
	"metropolis.dev/osbase/test/ktest/internal/spec"
)

func main() {
	s, err := readSpec()
	var result string
	if err != nil {
		// Without the spec there is no nonce: the host times out, and
		// shows this line in the console it reports.
		logf("reading %s: %v", spec.Path, err)
	} else {
		result = run(s)
	}
	if result != "" {
		// The result line starts a line of its own even if the tests
		// left one unfinished.
		fmt.Fprintf(os.Stdout, "\n%s\n", result)
	}
	drainConsole()
	unix.Sync()
	// The VM ends by rebooting, which qemu (run with -no-reboot) turns
	// into its exit. Powering off would need ACPI, which a VM can lack:
	// qemu 7.2's direct boot loads the initramfs over the ACPI tables
	// when a TPM's event log area makes them larger than it expects, and
	// the kernel then halts instead of powering off.
	err = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	logf("rebooting: %v", err)
}

// logf prints a message of the init on the console.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stdout, "ktest: "+format+"\n", args...)
}

func readSpec() (*spec.Spec, error) {
	b, err := os.ReadFile(spec.Path)
	if err != nil {
		return nil, err
	}
	var s spec.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// run prepares the system and runs the tests, and returns the result line.
func run(s *spec.Spec) string {
	if err := mountFilesystems(); err != nil {
		return spec.FailLine(s.Nonce, "init: "+err.Error())
	}
	if err := loadModules(s.Modules); err != nil {
		return spec.FailLine(s.Nonce, "init: "+err.Error())
	}
	code, err := runTests(s)
	switch {
	case err != nil:
		return spec.FailLine(s.Nonce, "init: "+err.Error())
	case code != 0:
		return spec.FailLine(s.Nonce, spec.ExitReason(code))
	}
	return spec.PassLine(s.Nonce)
}

// mountFilesystems mounts what a test can expect of a Linux system:
// /proc, /sys, /dev with the kernel's device nodes, and a writable /tmp
// (the initramfs itself is writable too).
func mountFilesystems() error {
	for _, m := range []struct {
		fstype, target string
		flags          uintptr
	}{
		{"proc", "/proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{"sysfs", "/sys", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{"devtmpfs", "/dev", unix.MS_NOSUID},
		{"tmpfs", "/tmp", unix.MS_NOSUID | unix.MS_NODEV},
	} {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.fstype, m.target, m.fstype, m.flags, ""); err != nil {
			return fmt.Errorf("mounting %s on %s: %w", m.fstype, m.target, err)
		}
	}
	return nil
}

func loadModules(names []string) error {
	if len(names) == 0 {
		return nil
	}
	start := time.Now()
	m, err := kmod.NewManager()
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := m.Load(name); err != nil {
			return fmt.Errorf("loading module %s: %w", name, err)
		}
	}
	logf("loaded modules %v in %v", names, time.Since(start).Round(time.Millisecond))
	return nil
}

// runTests runs the test binary with its output on the console and returns
// its exit code.
func runTests(s *spec.Spec) (int, error) {
	cmd := exec.Command(spec.TesterPath, s.Args...)
	cmd.Dir = "/tmp"
	cmd.Env = append([]string{
		spec.InVMEnv + "=true",
		"PATH=/",
		"HOME=/tmp",
		"TMPDIR=/tmp",
	}, s.Env...)
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	logf("running %s %v", spec.TesterPath, s.Args)
	start := time.Now()
	err := cmd.Run()
	logf("tests ran for %v", time.Since(start).Round(time.Millisecond))
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		if code := exitErr.ExitCode(); code > 0 {
			return code, nil
		}
		// Killed by a signal.
		return 0, fmt.Errorf("test binary: %w", err)
	}
	if err != nil {
		return 0, fmt.Errorf("running the test binary: %w", err)
	}
	return 0, nil
}

// drainConsole waits until everything written to the console has been sent
// out of the serial port, so that rebooting does not cut the result
// line short.
func drainConsole() {
	// TCSBRK with a non-zero argument is tcdrain(3).
	if err := unix.IoctlSetInt(int(os.Stdout.Fd()), unix.TCSBRK, 1); err != nil {
		logf("draining the console: %v", err)
	}
}
