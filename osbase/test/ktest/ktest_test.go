package ktest

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"metropolis.dev/osbase/structfs"
	"metropolis.dev/osbase/test/ktest/internal/spec"
	"metropolis.dev/osbase/test/qemu"
)

// diskMarker starts the disk TestKtest gives the VM.
const diskMarker = "ktest self-test disk\n"

// selfTestModules are the modules of the self-test VMs: a driver with
// dependencies. Both VMs load them, so they share one kernel tree.
var selfTestModules = []string{"virtio_pci", "virtio_blk"}

// TestKtest boots a VM that runs TestInVMEnvironment, with a module that
// has dependencies and a disk.
func TestKtest(t *testing.T) {
	disk := filepath.Join(t.TempDir(), "disk.img")
	content := make([]byte, 1<<20)
	copy(content, diskMarker)
	if err := os.WriteFile(disk, content, 0o644); err != nil {
		t.Fatal(err)
	}
	Run(t, Options{
		Run:     "^TestInVMEnvironment$",
		Modules: selfTestModules,
		Env:     []string{"KTEST_SELFTEST=hello"},
		Devices: []qemu.Device{qemu.Disk{Path: disk, ReadOnly: true, Serial: "ktest-disk"}},
	})
}

// TestKtestReportsFailure boots a VM whose test fails, and checks that the
// failure and its message reach the host.
func TestKtestReportsFailure(t *testing.T) {
	if InVM() {
		t.Skip("starts a ktest VM")
	}
	err := run(t, Options{Run: "^TestInVMFails$", Modules: selfTestModules, Env: []string{"KTEST_SELFTEST_FAIL=1"}})
	if err == nil {
		t.Fatal("a failing test in the VM passed on the host")
	}
	for _, want := range []string{"exit status 1", "--- FAIL: TestInVMFails", "deliberate failure"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not contain %q:\n%v", want, err)
		}
	}
}

// TestInVMFails fails in the VM started by TestKtestReportsFailure.
func TestInVMFails(t *testing.T) {
	OnlyInVM(t)
	if os.Getenv("KTEST_SELFTEST_FAIL") != "1" {
		t.Skip("fails only for TestKtestReportsFailure")
	}
	t.Error("deliberate failure")
}

// TestInVMEnvironment checks, in the VM started by TestKtest, what the init
// promises.
func TestInVMEnvironment(t *testing.T) {
	OnlyInVM(t)
	if ppid := os.Getppid(); ppid != 1 {
		t.Errorf("the test binary's parent is process %d, not the init", ppid)
	}
	if got := os.Getenv("KTEST_SELFTEST"); got != "hello" {
		t.Errorf("KTEST_SELFTEST=%q, want the value from Options.Env", got)
	}
	if wd, err := os.Getwd(); err != nil || wd != "/tmp" {
		t.Errorf("working directory %q (%v), want /tmp", wd, err)
	}
	if err := os.WriteFile("scratch", []byte("x"), 0o644); err != nil {
		t.Errorf("the working directory is not writable: %v", err)
	}

	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"proc /proc proc", "sysfs /sys sysfs", "devtmpfs /dev devtmpfs", "tmpfs /tmp tmpfs"} {
		if !strings.Contains(string(mounts), want) {
			t.Errorf("no mount %q in:\n%s", want, mounts)
		}
	}

	modules, err := os.ReadFile("/proc/modules")
	if err != nil {
		t.Fatal(err)
	}
	// virtio_blk depends on virtio and virtio_ring, which the init loaded
	// first.
	for _, m := range []string{"virtio_blk", "virtio_pci", "virtio_ring", "virtio"} {
		if !slices.ContainsFunc(strings.Split(string(modules), "\n"), func(l string) bool {
			return strings.HasPrefix(l, m+" ")
		}) {
			t.Errorf("module %s is not loaded:\n%s", m, modules)
		}
	}

	disk := DiskBySerial(t, "ktest-disk")
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := make([]byte, len(diskMarker))
	if _, err := f.ReadAt(head, 0); err != nil || string(head) != diskMarker {
		t.Errorf("the disk starts with %q (%v), want %q", head, err, diskMarker)
	}
}

func TestRunNeedsPattern(t *testing.T) {
	if InVM() {
		t.Skip("host only")
	}
	err := run(t, Options{})
	if err == nil || !strings.Contains(err.Error(), "Options.Run") {
		t.Errorf("got %v, want an error asking for Options.Run", err)
	}
}

func TestTestArgs(t *testing.T) {
	got := testArgs(Options{Run: "^TestVM", Timeout: 90 * time.Second})
	want := []string{"-test.v", "-test.run=^TestVM", "-test.timeout=" + qemu.Timeout(90*time.Second).String()}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestInitramfsTree(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	initBin := write("init", "init binary")
	tester := write("tester", "test binary")
	write("lib/modules/6.1.0-1-amd64/modules.dep", "kernel/x.ko:\n")
	s := spec.Spec{Modules: []string{"x"}, Args: []string{"-test.v"}, Nonce: "n"}
	tree, err := initramfsTree(s, initBin, tester, filepath.Join(dir, "lib"))
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[string]structfs.Entry)
	if err := tree.Walk(func(e structfs.Entry) error {
		got[e.Path] = e
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	content := func(p string) string {
		e, ok := got[p]
		if !ok || e.Type != structfs.TypeFile {
			t.Fatalf("%s is missing or not a file: %+v", p, e)
		}
		var b bytes.Buffer
		if err := structfs.CopyBlob(&b, e.Blob); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	if c := content("/init"); c != "init binary" || got["/init"].Mode != 0o755 {
		t.Errorf("/init is %q with mode %v", c, got["/init"].Mode)
	}
	if c := content("/tester"); c != "test binary" || got["/tester"].Mode != 0o755 {
		t.Errorf("/tester is %q with mode %v", c, got["/tester"].Mode)
	}
	var back spec.Spec
	if err := json.Unmarshal([]byte(content(spec.Path)), &back); err != nil || back.Nonce != "n" || !slices.Equal(back.Modules, s.Modules) {
		t.Errorf("the spec reads back as %+v (%v), want %+v", back, err, s)
	}
	content("/lib/modules/6.1.0-1-amd64/modules.dep")
	if c := got["/dev/console"]; c.Type != structfs.TypeCharDevice || c.Major != 5 || c.Minor != 1 {
		t.Errorf("/dev/console is %+v, want character device 5:1", c)
	}
	for _, d := range []string{"/proc", "/sys", "/tmp", "/dev"} {
		if got[d].Type != structfs.TypeDir {
			t.Errorf("mount point %s is missing", d)
		}
	}
}

func TestFailureReport(t *testing.T) {
	console := []string{
		"ktest: running /tester [-test.v]",
		"=== RUN   TestA",
		"    a_test.go:1: passing test's log",
		"--- PASS: TestA (0.00s)",
		"=== RUN   TestB",
		"    b_test.go:10: first complaint",
		"[    6.9] device-mapper: table: 253:0: linear: Gap in table (-EINVAL)",
		"    b_test.go:12: second complaint",
		"--- FAIL: TestB (0.01s)",
		"=== RUN   TestC",
		"=== RUN   TestC/ok",
		"=== RUN   TestC/bad",
		"    c_test.go:3: sub failed",
		"=== NAME  TestC",
		"    c_test.go:9: parent complains",
		"--- FAIL: TestC (0.00s)",
		"    --- PASS: TestC/ok (0.00s)",
		"    --- FAIL: TestC/bad (0.00s)",
		"=== RUN   TestD",
		"--- SKIP: TestD (0.00s)",
		"=== RUN   TestE",
		"panic: oops",
		"",
		"goroutine 1 [running]:",
		"main.f()",
		"FAIL",
	}
	want := []string{
		"--- FAIL: TestB (0.01s)",
		"    b_test.go:10: first complaint",
		"[    6.9] device-mapper: table: 253:0: linear: Gap in table (-EINVAL)",
		"    b_test.go:12: second complaint",
		"--- FAIL: TestC (0.00s)",
		"    c_test.go:9: parent complains",
		"    --- FAIL: TestC/bad (0.00s)",
		"    c_test.go:3: sub failed",
		"panic: oops",
		"",
		"goroutine 1 [running]:",
		"main.f()",
		"FAIL",
	}
	if got := failureReport(console); !slices.Equal(got, want) {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestNoTestsRan(t *testing.T) {
	if noTestsRan([]string{"=== RUN   TestA", "--- PASS: TestA (0.00s)", "PASS"}) {
		t.Error("a run with a test counts as none")
	}
	if !noTestsRan([]string{"testing: warning: no tests to run", "PASS"}) {
		t.Error("a run without tests counts as one")
	}
}

func TestCacheKey(t *testing.T) {
	pin := strings.Repeat("a", 64)
	other := strings.Repeat("b", 64)
	base := cacheKey(pin, []string{"dm_mod", "virtio_blk"})
	for _, tc := range []struct {
		name    string
		key     string
		wantSet bool
	}{
		{"same", cacheKey(pin, []string{"dm_mod", "virtio_blk"}), true},
		{"order", cacheKey(pin, []string{"virtio_blk", "dm_mod"}), true},
		{"dashes", cacheKey(pin, []string{"dm-mod", "virtio_blk"}), true},
		{"repeated", cacheKey(pin, []string{"dm_mod", "virtio_blk", "dm_mod"}), true},
		{"other modules", cacheKey(pin, []string{"dm_mod"}), false},
		{"other kernel", cacheKey(other, []string{"dm_mod", "virtio_blk"}), false},
	} {
		if (tc.key == base) != tc.wantSet {
			t.Errorf("%s: key %s, base %s; want equal=%v", tc.name, tc.key, base, tc.wantSet)
		}
	}
}

func TestEnsureDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "tree")
	var fills atomic.Int32
	fill := func(tmp string) error {
		fills.Add(1)
		return os.WriteFile(filepath.Join(tmp, "file"), []byte("x"), 0o644)
	}
	// Concurrent callers all end with the directory; at most all of them
	// fill it, and later callers do not.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = ensureDir(dir, fill) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "file")); err != nil {
		t.Fatal(err)
	}
	before := fills.Load()
	if err := ensureDir(dir, fill); err != nil || fills.Load() != before {
		t.Errorf("filled an existing directory again (err %v)", err)
	}

	failed := filepath.Join(t.TempDir(), "failed")
	if err := ensureDir(failed, func(tmp string) error { return unix.EIO }); !errors.Is(err, unix.EIO) {
		t.Errorf("got %v, want the fill's error", err)
	}
	entries, err := os.ReadDir(filepath.Dir(failed))
	if err != nil || len(entries) != 0 {
		t.Errorf("a failed fill left %v (%v)", entries, err)
	}
}
