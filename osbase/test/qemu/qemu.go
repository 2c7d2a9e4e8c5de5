package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Accel selects how qemu runs the guest's code.
type Accel string

const (
	// AccelAuto uses KVM when /dev/kvm is usable and TCG otherwise.
	AccelAuto Accel = ""
	// AccelKVM runs the guest with hardware virtualization.
	AccelKVM Accel = "kvm"
	// AccelTCG emulates the guest's CPUs in software.
	AccelTCG Accel = "tcg"
)

// KVMAvailable reports whether /dev/kvm exists and this process may use it.
func KVMAvailable() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// Options describe the machine a VM runs on. The zero value is usable.
type Options struct {
	// Name identifies the VM in qemu's process list and in errors.
	Name string
	// MemoryMiB is the guest's memory in MiB; 0 means 1024.
	MemoryMiB int
	// CPUs is the number of virtual CPUs; 0 means 1.
	CPUs int
	// Dir holds the VM's files: firmware variables, disk overlays, sockets.
	// If empty, Start creates a temporary directory and Stop removes it; a
	// given directory must exist and is kept. Socket paths must stay below
	// 108 bytes, so keep it short.
	Dir string
	// Accel chooses between KVM and TCG; the default picks KVM if it can.
	Accel Accel
	// AllowReboot keeps qemu running when the guest reboots. By default
	// qemu exits instead (-no-reboot), so that a kernel panic (with
	// panic=-1 on the kernel command line) or a reboot ends the VM.
	AllowReboot bool
	// ConsoleLog, if not nil, is called with every line of the console as
	// it arrives, for example to stream it to t.Log. It is called from one
	// goroutine at a time, and no more after Stop or Wait returned.
	ConsoleLog func(line string)
	// ExtraArgs are appended to qemu's command line, after those of the
	// devices.
	ExtraArgs []string
}

// qemuBinary is the program Start runs.
const qemuBinary = "qemu-system-x86_64"

// stopGrace is how long a process may take to exit after SIGTERM before it
// is killed.
const stopGrace = 5 * time.Second

// A Device adds hardware, firmware or a boot method to a VM.
type Device interface {
	// Args returns the device's qemu arguments. It is called after every
	// device was prepared (see Preparer), and may not change anything
	// outside the returned arguments.
	Args(s *Setup) ([]string, error)
}

// A Preparer is a Device that needs work done before qemu starts, such as
// creating files in the VM's directory or starting helper processes.
type Preparer interface {
	Device
	// Prepare is called for each device in order, before any device's
	// Args. Helper processes are started with Setup.StartHelper, so that
	// the VM stops them.
	Prepare(ctx context.Context, s *Setup) error
}

// Setup is what a device learns about the VM it is being added to. Each
// device sees its own Setup, which gives it names (ID, File) that no other
// device of the VM uses.
type Setup struct {
	dir   string
	index int
	kvm   bool
	vm    *VM
}

// Dir is the VM's directory (see Options.Dir).
func (s *Setup) Dir() string { return s.dir }

// KVM reports whether the VM runs with KVM rather than TCG.
func (s *Setup) KVM() bool { return s.kvm }

// ID returns a qemu object ID for the device, unique within the VM, such
// as "disk-2" for kind "disk" and the third device.
func (s *Setup) ID(kind string) string {
	return kind + "-" + strconv.Itoa(s.index)
}

// File returns the path of a file in the VM's directory, unique to the
// device, such as DIR/2-name for the third device.
func (s *Setup) File(name string) string {
	return filepath.Join(s.dir, strconv.Itoa(s.index)+"-"+name)
}

// StartHelper starts a helper process for the device, such as a TPM
// emulator. Its output is kept for error messages. The VM terminates it
// after qemu exits, and it is killed if the test process dies. The command
// must not have been started and must not set Stdout, Stderr or
// SysProcAttr.
func (s *Setup) StartHelper(name string, cmd *exec.Cmd) error {
	if s.vm == nil {
		return fmt.Errorf("starting %s: helpers can only be started by Start", name)
	}
	h := &helper{name: name, cmd: cmd, out: newTailBuffer(helperOutputLimit), done: make(chan struct{})}
	cmd.Stdout = h.out
	cmd.Stderr = h.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		h.err = cmd.Wait()
		close(h.done)
	}()
	s.vm.helpers = append(s.vm.helpers, h)
	return nil
}

const (
	stderrLimit       = 64 << 10
	helperOutputLimit = 16 << 10
)

// A helper is a process started for a device.
type helper struct {
	name string
	cmd  *exec.Cmd
	out  *tailBuffer
	done chan struct{}
	err  error // set before done is closed
}

// stop terminates the helper and waits for it to exit.
func (h *helper) stop() {
	select {
	case <-h.done:
		return
	default:
	}
	h.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-h.done:
	case <-t.C:
		h.cmd.Process.Kill()
		<-h.done
	}
}

// A VM is a running qemu process.
type VM struct {
	name    string
	dir     string
	ownDir  bool
	args    []string
	cancel  context.CancelFunc
	ctx     context.Context
	cmd     *exec.Cmd
	stderr  *tailBuffer
	console *Console
	helpers []*helper
	// consoleLog is Options.ConsoleLog.
	consoleLog func(string)

	// done is closed when qemu has exited, its output is read and its
	// helpers are stopped; err is set before.
	done chan struct{}
	err  error

	stopOnce sync.Once
	stopErr  error
}

// Start prepares the devices and starts qemu. The VM runs until the guest
// powers off, reboots (unless Options.AllowReboot) or crashes, until Stop
// is called, or until ctx is cancelled; in each case qemu and every helper
// process are ended. Stop must still be called to remove the VM's files.
func Start(ctx context.Context, opts Options, devices ...Device) (vm *VM, err error) {
	qemu, err := exec.LookPath(qemuBinary)
	if err != nil {
		return nil, fmt.Errorf("%s not found (install the Debian package qemu-system-x86): %w", qemuBinary, err)
	}
	kvm, err := useKVM(opts.Accel)
	if err != nil {
		return nil, err
	}
	vmCtx, cancel := context.WithCancel(ctx)
	vm = &VM{name: opts.Name, dir: opts.Dir, consoleLog: opts.ConsoleLog, cancel: cancel, ctx: vmCtx, done: make(chan struct{})}
	defer func() {
		if err != nil {
			cancel()
			vm.stopHelpers()
			if vm.ownDir {
				os.RemoveAll(vm.dir)
			}
			err = fmt.Errorf("starting VM %s: %w", opts.Name, err)
			vm = nil
		}
	}()
	if vm.dir == "" {
		vm.dir, err = os.MkdirTemp("", "qemu-")
		if err != nil {
			return nil, err
		}
		vm.ownDir = true
	} else if fi, err := os.Stat(vm.dir); err != nil {
		return nil, err
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", vm.dir)
	}

	setups := make([]*Setup, len(devices))
	for i, d := range devices {
		setups[i] = &Setup{dir: vm.dir, index: i, kvm: kvm, vm: vm}
		if p, ok := d.(Preparer); ok {
			if err := p.Prepare(vmCtx, setups[i]); err != nil {
				return nil, fmt.Errorf("preparing device %d (%T): %w", i, d, err)
			}
		}
	}
	args, err := machineArgs(opts, kvm)
	if err != nil {
		return nil, err
	}
	for i, d := range devices {
		a, err := d.Args(setups[i])
		if err != nil {
			return nil, fmt.Errorf("device %d (%T): %w", i, d, err)
		}
		args = append(args, a...)
	}
	args = append(args, opts.ExtraArgs...)
	vm.args = append([]string{qemu}, args...)

	if err := vm.startQEMU(); err != nil {
		return nil, err
	}
	return vm, nil
}

func useKVM(a Accel) (bool, error) {
	switch a {
	case AccelAuto:
		return KVMAvailable(), nil
	case AccelKVM:
		if !KVMAvailable() {
			return false, errors.New("KVM was requested, but /dev/kvm is not usable")
		}
		return true, nil
	case AccelTCG:
		return false, nil
	}
	return false, fmt.Errorf("unknown accelerator %q", a)
}

// machineArgs returns qemu's arguments for the machine itself and its
// console.
func machineArgs(opts Options, kvm bool) ([]string, error) {
	mem, cpus := opts.MemoryMiB, opts.CPUs
	if mem == 0 {
		mem = 1024
	}
	if cpus == 0 {
		cpus = 1
	}
	if mem < 0 || cpus < 0 {
		return nil, fmt.Errorf("invalid memory (%d MiB) or CPU count (%d)", opts.MemoryMiB, opts.CPUs)
	}
	args := []string{"-nodefaults", "-no-user-config", "-display", "none"}
	if opts.Name != "" {
		args = append(args, "-name", escapeOpt(opts.Name))
	}
	args = append(args, "-machine", "q35")
	if kvm {
		args = append(args, "-accel", "kvm", "-cpu", "host")
	} else {
		args = append(args, "-accel", "tcg,thread=multi", "-cpu", "max")
	}
	args = append(args,
		"-m", strconv.Itoa(mem)+"M",
		"-smp", strconv.Itoa(cpus),
		"-chardev", "stdio,id=console,signal=off",
		"-serial", "chardev:console",
	)
	if !opts.AllowReboot {
		args = append(args, "-no-reboot")
	}
	return args, nil
}

func (vm *VM) startQEMU() error {
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return err
	}
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		stdinR.Close()
		stdinW.Close()
		return err
	}
	cmd := exec.CommandContext(vm.ctx, vm.args[0], vm.args[1:]...)
	cmd.Stdin = stdinR
	cmd.Stdout = stdoutW
	vm.stderr = newTailBuffer(stderrLimit)
	cmd.Stderr = vm.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// On cancellation qemu gets SIGTERM, to which it reacts by exiting
	// cleanly, and SIGKILL if it has not exited after stopGrace.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopGrace
	err = cmd.Start()
	stdinR.Close()
	stdoutW.Close()
	if err != nil {
		stdinW.Close()
		stdoutR.Close()
		return fmt.Errorf("starting qemu: %w", err)
	}
	vm.cmd = cmd
	vm.console = newConsole(stdinW, vm.consoleLog)

	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		vm.console.read(stdoutR)
		stdoutR.Close()
	}()
	go func() {
		exitErr := cmd.Wait()
		<-readDone
		stdinW.Close()
		vm.stopHelpers()
		vm.err = vm.exitError(exitErr)
		vm.console.end(vm.err)
		close(vm.done)
	}()
	return nil
}

// exitError explains how qemu exited.
func (vm *VM) exitError(exitErr error) error {
	if exitErr == nil {
		return nil
	}
	var b strings.Builder
	if vm.ctx.Err() != nil {
		fmt.Fprintf(&b, "qemu was stopped: %v", exitErr)
	} else {
		fmt.Fprintf(&b, "qemu failed: %v", exitErr)
	}
	if s := strings.TrimSpace(vm.stderr.String()); s != "" {
		fmt.Fprintf(&b, "\nqemu's standard error:\n\t%s", strings.ReplaceAll(s, "\n", "\n\t"))
	}
	for _, h := range vm.helpers {
		if s := strings.TrimSpace(h.out.String()); s != "" {
			fmt.Fprintf(&b, "\n%s output (exit: %v):\n\t%s", h.name, h.err, strings.ReplaceAll(s, "\n", "\n\t"))
		}
	}
	return errors.New(b.String())
}

// stopHelpers stops the helper processes, in reverse order of starting.
func (vm *VM) stopHelpers() {
	for i := len(vm.helpers) - 1; i >= 0; i-- {
		vm.helpers[i].stop()
	}
}

// Console returns the guest's serial console.
func (vm *VM) Console() *Console { return vm.console }

// Dir returns the VM's directory (see Options.Dir).
func (vm *VM) Dir() string { return vm.dir }

// Args returns qemu's command line, starting with the program's path.
func (vm *VM) Args() []string { return append([]string(nil), vm.args...) }

// Done returns a channel that is closed when the VM has ended.
func (vm *VM) Done() <-chan struct{} { return vm.done }

// Wait waits for qemu to exit and returns nil if it exited successfully,
// which it does when the guest powers off or, unless Options.AllowReboot
// is set, reboots. Otherwise the error includes qemu's standard error.
func (vm *VM) Wait() error {
	<-vm.done
	return vm.err
}

// Stop ends qemu and every helper process, if they still run, and removes
// the VM's directory if Start created it. It can be called more than once
// and returns an error only if the files could not be removed; Wait tells
// how qemu ended.
func (vm *VM) Stop() error {
	vm.stopOnce.Do(func() {
		vm.cancel()
		<-vm.done
		if vm.ownDir {
			if err := os.RemoveAll(vm.dir); err != nil {
				vm.stopErr = fmt.Errorf("removing VM %s's files: %w", vm.name, err)
			}
		}
	})
	return vm.stopErr
}

// A tailBuffer is a writer that keeps the last bytes written to it.
type tailBuffer struct {
	mu    sync.Mutex
	limit int
	buf   []byte
	cut   bool
}

func newTailBuffer(limit int) *tailBuffer { return &tailBuffer{limit: limit} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.limit; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.cut = true
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cut {
		return "[...]" + string(t.buf)
	}
	return string(t.buf)
}
