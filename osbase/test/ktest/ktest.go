package ktest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"metropolis.dev/osbase/cpio"
	"metropolis.dev/osbase/structfs"
	"metropolis.dev/osbase/test/ktest/internal/spec"
	"metropolis.dev/osbase/test/qemu"
)

// Options describe a ktest run.
type Options struct {
	// Run is the -test.run pattern that selects the tests to run in the
	// VM. It is required: a package's other tests are written for the
	// host, and would fail or waste time in the VM.
	Run string
	// Package is the package whose tests run in the VM, as go test names
	// it. Empty means the package of the calling test.
	Package string
	// Modules are the kernel modules the init loads, in this order and
	// each after what it depends on, before the tests run. The VM has
	// the drivers built into the kernel and nothing else: a qemu.Disk, for
	// example, needs virtio_pci and virtio_blk.
	Modules []string
	// Cmdline is added to the kernel command line.
	Cmdline string
	// Env is added to the environment of the tests, as KEY=value.
	Env []string
	// Args are added to the test binary's arguments, after -test.v,
	// -test.run and -test.timeout.
	Args []string
	// Devices are added to the VM, for example a qemu.Disk.
	Devices []qemu.Device
	// Programs are added to the VM's initramfs with the libraries they
	// load, for tests of code that runs them, such as a node's mkfs.xfs.
	Programs []Program
	// MemoryMiB and CPUs size the VM as in qemu.Options. Zero means
	// 1024 MiB and one CPU.
	MemoryMiB int
	CPUs      int
	// Timeout is how long the tests may run in the VM, not counting the
	// boot, before scaling with qemu.Timeout. Zero means DefaultTimeout.
	// The tests get it as -test.timeout, so that a hung test panics with
	// the stacks of all goroutines before the host gives up.
	Timeout time.Duration
}

// Base timeouts (see qemu.Timeout).
const (
	// DefaultTimeout is the default of Options.Timeout.
	DefaultTimeout = time.Minute
	// bootTimeout is how long the boot and the init may take before the
	// tests start: under TCG on two cores the kernel boots in about 3 s,
	// twice that with another VM running, and loading a dozen modules
	// takes a second more.
	bootTimeout = time.Minute
	// exitTimeout is how long qemu may take to exit after the result
	// line.
	exitTimeout = 30 * time.Second
)

// baseCmdline is the start of the kernel command line: the console on
// the serial port the harness reads; only warnings and errors from the
// kernel, so that the tests' output stands out; and a reboot, which ends
// qemu, rather than a hang if the init dies.
const baseCmdline = "console=ttyS0 quiet panic=-1"

// InVM reports whether the test binary runs in a ktest VM.
func InVM() bool {
	return os.Getenv(spec.InVMEnv) == "true"
}

// OnlyInVM skips the test unless it runs in a ktest VM. Tests that need
// the VM's kernel call it first.
func OnlyInVM(t testing.TB) {
	t.Helper()
	if !InVM() {
		t.Skipf("runs in a ktest VM only (%s=true), started by a test that calls ktest.Run", spec.InVMEnv)
	}
}

// Run runs tests of a package in a VM, on the project's kernel, and fails
// t if they fail, do not finish in time, or cannot be started. In the VM,
// where it would start VMs recursively, it skips t instead.
//
// The VM's console is logged to t as it arrives, with the tests' output.
func Run(t *testing.T, opts Options) {
	t.Helper()
	if InVM() {
		t.Skip("starts the ktest VM, which this is")
	}
	if err := run(t, opts); err != nil {
		t.Fatal(err)
	}
}

// run does the work of Run and returns why it failed.
func run(t *testing.T, opts Options) error {
	if opts.Run == "" {
		return errors.New("ktest: Options.Run must select the tests to run in the VM")
	}
	if opts.Package == "" {
		opts.Package = "."
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	dir := t.TempDir()
	start := time.Now()
	in, err := prepare(t.Context(), dir, opts)
	if err != nil {
		return err
	}
	t.Logf("ktest: built the test binary, init, kernel and initramfs (%.1f MB) in %v",
		float64(in.initramfsSize)/1e6, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	vm := qemu.StartT(t, qemu.Options{
		Name:       "ktest",
		MemoryMiB:  opts.MemoryMiB,
		CPUs:       opts.CPUs,
		ConsoleLog: func(line string) { t.Log(line) },
	}, append([]qemu.Device{qemu.DirectBoot{
		Kernel:    in.kernel,
		Initramfs: in.initramfs,
		Cmdline:   strings.TrimSpace(baseCmdline + " " + opts.Cmdline),
	}}, opts.Devices...)...)

	match := spec.ResultMatcher(in.nonce)
	var result spec.Result
	ctx, cancel := context.WithTimeout(t.Context(), qemu.Timeout(bootTimeout+opts.Timeout))
	defer cancel()
	_, err = vm.Console().ExpectFunc(ctx, "ktest result line", func(line string) bool {
		r, ok := match(line)
		if ok {
			result = r
		}
		return ok
	})
	if err != nil {
		return fmt.Errorf("ktest: no result from the VM after %v: %w", time.Since(start).Round(time.Millisecond), err)
	}
	t.Logf("ktest: VM reported %v after %v", result, time.Since(start).Round(time.Millisecond))

	var exitErr error
	select {
	case <-vm.Done():
		exitErr = vm.Wait()
	case <-time.After(qemu.Timeout(exitTimeout)):
		exitErr = fmt.Errorf("the VM did not end within %v of reporting", qemu.Timeout(exitTimeout))
	}
	if !result.Pass {
		lines := failureReport(vm.Console().Lines())
		return fmt.Errorf("ktest: the tests in the VM failed: %s\n%s", result.Reason, strings.Join(lines, "\n"))
	}
	if exitErr != nil {
		return fmt.Errorf("ktest: the tests passed, but: %w", exitErr)
	}
	if noTestsRan(vm.Console().Lines()) {
		return fmt.Errorf("ktest: no test in the VM matches -test.run=%s", opts.Run)
	}
	return nil
}

// noTestsRan tells whether go test reported that no test matched
// -test.run, which passes but is a mistake here.
func noTestsRan(lines []string) bool {
	return slices.ContainsFunc(lines, func(l string) bool {
		return strings.Contains(l, "testing: warning: no tests to run")
	})
}

// inputs are what a ktest VM boots.
type inputs struct {
	kernel        string
	initramfs     string
	initramfsSize int64
	nonce         string
}

// prepare builds the test binary and the init, gets the kernel and its
// modules, and writes the initramfs into dir.
func prepare(ctx context.Context, dir string, opts Options) (*inputs, error) {
	moduleRoot, err := goModuleRoot(ctx)
	if err != nil {
		return nil, err
	}
	tester := filepath.Join(dir, "tester")
	initBin := filepath.Join(dir, "init")
	var tree kernelTree
	var errs [3]error
	var wg sync.WaitGroup
	wg.Go(func() {
		errs[0] = goBuild(ctx, "", "test", "-c", "-o", tester, opts.Package)
	})
	wg.Go(func() {
		errs[1] = goBuild(ctx, moduleRoot, "build", "-o", initBin, initPackage)
	})
	wg.Go(func() {
		tree, errs[2] = getKernelTree(ctx, moduleRoot, opts.Modules)
	})
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		return nil, err
	}

	in := &inputs{kernel: tree.vmlinux, initramfs: filepath.Join(dir, "initramfs.cpio.zst"), nonce: newNonce()}
	s := spec.Spec{
		Modules: opts.Modules,
		Args:    append(testArgs(opts), opts.Args...),
		Env:     opts.Env,
		Nonce:   in.nonce,
	}
	fsTree, err := initramfsTree(s, initBin, tester, tree.lib())
	if err != nil {
		return nil, err
	}
	if err := placePrograms(ctx, fsTree, moduleRoot, opts.Programs); err != nil {
		return nil, err
	}
	if in.initramfsSize, err = writeInitramfs(in.initramfs, fsTree); err != nil {
		return nil, err
	}
	return in, nil
}

// testArgs returns the arguments of the test binary that Options set.
func testArgs(opts Options) []string {
	return []string{
		"-test.v",
		"-test.run=" + opts.Run,
		"-test.timeout=" + qemu.Timeout(opts.Timeout).String(),
	}
}

// initPackage is the init of the VM.
const initPackage = "metropolis.dev/osbase/test/ktest/ktestinit"

// goBuild runs a go command that builds a static binary for the VM, in
// dir, or the current directory if dir is empty.
func goBuild(ctx context.Context, dir string, args ...string) error {
	// Stripping the symbol table and DWARF leaves panics their stack
	// traces and makes the initramfs a third smaller.
	args = append(args[:1:1], append([]string{"-ldflags=-s -w"}, args[1:]...)...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ktest: go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// goModuleRoot returns the root directory of the Go module of the current
// directory, where the kernel's pin file is found.
func goModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("ktest: finding the Go module: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("ktest: the current directory is not in a Go module")
	}
	return filepath.Dir(gomod), nil
}

// newNonce returns a random string that marks the result line of one run.
func newNonce() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// initramfsTree returns the files of the VM: the init, the test binary,
// the spec, the module tree at /lib, mount points, and /dev/console, which
// the kernel opens for the init before /dev is mounted.
func initramfsTree(s spec.Spec, initBin, tester, lib string) (*structfs.Tree, error) {
	specJSON, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	initBlob, err := structfs.HostFile(initBin)
	if err != nil {
		return nil, err
	}
	testerBlob, err := structfs.HostFile(tester)
	if err != nil {
		return nil, err
	}
	var tree structfs.Tree
	for _, p := range []struct {
		path string
		node structfs.Node
	}{
		{"/init", structfs.File(0o755, initBlob)},
		{spec.TesterPath, structfs.File(0o755, testerBlob)},
		{spec.Path, structfs.File(0o644, structfs.Bytes(specJSON))},
		{"/dev", structfs.Dir(0o755)},
		{"/dev/console", structfs.CharDevice(0o600, 5, 1)},
		{"/proc", structfs.Dir(0o555)},
		{"/sys", structfs.Dir(0o555)},
		{"/tmp", structfs.Dir(fs.ModeSticky | 0o777)},
	} {
		if err := tree.Place(p.path, p.node); err != nil {
			return nil, fmt.Errorf("ktest: initramfs: %w", err)
		}
	}
	if err := tree.PlaceHostDir("/lib", lib); err != nil {
		return nil, fmt.Errorf("ktest: initramfs: %w", err)
	}
	return &tree, nil
}

// writeInitramfs writes the tree as a zstd-compressed cpio archive and
// returns its size.
func writeInitramfs(path string, tree *structfs.Tree) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, fmt.Errorf("ktest: %w", err)
	}
	defer f.Close()
	if err := cpio.WriteCompressed(f, tree, cpio.Options{}); err != nil {
		return 0, fmt.Errorf("ktest: writing initramfs: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("ktest: %w", err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("ktest: writing initramfs: %w", err)
	}
	return fi.Size(), nil
}

// testEvent matches the lines by which go test -v reports that a test
// starts, resumes or ends.
var testEvent = regexp.MustCompile(`^\s*(=== (?:RUN|CONT|NAME|PAUSE)|--- (?:PASS|FAIL|SKIP):)\s+(\S+)`)

// panicLines is how many lines of a panic's stack trace failureReport
// keeps.
const panicLines = 30

// failureReport picks the lines that explain a failure out of the console
// of a VM that ran go test -v: the report of each failed test followed by
// what was printed while it ran (its log, and kernel messages), and any
// panic with the start of its stack trace.
func failureReport(lines []string) []string {
	var out []string
	// printed holds the lines printed while each unfinished test ran.
	printed := make(map[string][]string)
	current := ""
	for i, l := range lines {
		if strings.HasPrefix(l, "panic:") {
			return append(out, lines[i:min(len(lines), i+panicLines)]...)
		}
		m := testEvent.FindStringSubmatch(l)
		if m == nil {
			if current != "" {
				printed[current] = append(printed[current], l)
			}
			continue
		}
		event, name := m[1], m[2]
		switch {
		case strings.HasPrefix(event, "==="):
			current = name
		case event == "--- FAIL:":
			out = append(out, l)
			out = append(out, printed[name]...)
			fallthrough
		default:
			delete(printed, name)
		}
	}
	return out
}
