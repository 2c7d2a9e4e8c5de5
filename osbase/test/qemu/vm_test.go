package qemu

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// panicCmdline makes the kernel print to the serial console and reboot at
// once when it panics, which it does without an initramfs or root disk;
// qemu then exits because of -no-reboot.
const panicCmdline = "console=ttyS0 panic=-1"

// Base timeouts under TCG on 2 cores (see Timeout): the kernel prints its
// version after about 4 s (decompressing a bzImage), the panic after about
// 8 s, OVMF its boot manager line after about 5 s (7 s with Secure Boot).
const (
	bootTimeout = 60 * time.Second
	exitTimeout = 30 * time.Second
)

// waitExit waits for the VM to end and returns how it ended.
func waitExit(t *testing.T, vm *VM) error {
	t.Helper()
	select {
	case <-vm.Done():
		return vm.Wait()
	case <-time.After(Timeout(exitTimeout)):
		t.Fatalf("qemu did not exit within %v", Timeout(exitTimeout))
		return nil
	}
}

func expect(t *testing.T, c *Console, substr string) string {
	t.Helper()
	line, err := c.Expect(bootTimeout, substr)
	if err != nil {
		t.Fatal(err)
	}
	return line
}

// processGone fails the test if the process pid still exists.
func processGone(t *testing.T, what string, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("%s (pid %d) still exists: kill 0: %v", what, pid, err)
	}
}

func TestDirectBootPanics(t *testing.T) {
	start := time.Now()
	vm := StartT(t, Options{Name: "panic"}, DirectBoot{Kernel: testKernel(t), Cmdline: panicCmdline})
	c := vm.Console()
	line := expect(t, c, "Linux version 6.1")
	t.Logf("%v: %s", time.Since(start).Round(time.Millisecond), line)
	// The command line comes after the version: Expect goes forward.
	expect(t, c, "Command line: "+panicCmdline)
	line = expect(t, c, "Kernel panic - not syncing: VFS: Unable to mount root fs")
	t.Logf("%v: %s", time.Since(start).Round(time.Millisecond), line)
	// Checked only now: a failing Expect consumes every line that arrives
	// while it waits, which would hide the panic from the Expect above.
	if _, err := c.Expect(time.Second, "Linux version"); err == nil {
		t.Error("Expect matched a line before the previous match")
	}
	if err := waitExit(t, vm); err != nil {
		t.Errorf("qemu did not exit cleanly after the panic: %v", err)
	}
	if tr := vm.Console().Transcript(); !strings.Contains(tr, "Linux version 6.1") || strings.Contains(tr, "\x1b") || strings.Contains(tr, "\r") {
		t.Errorf("the transcript misses the kernel's version or has control characters:\n%s", tr)
	}
}

func TestTPM(t *testing.T) {
	state := t.TempDir()
	vm := StartT(t, Options{Name: "tpm"},
		DirectBoot{Kernel: testKernel(t), Cmdline: panicCmdline},
		TPM{StateDir: state})
	c := vm.Console()
	expect(t, c, "Linux version 6.1")
	line := expect(t, c, "tpm_tis")
	if !strings.Contains(line, "2.0 TPM") {
		t.Errorf("the TPM driver found %q, want a 2.0 TPM", line)
	}
	if err := waitExit(t, vm); err != nil {
		t.Errorf("qemu did not exit cleanly after the panic: %v", err)
	}
	// swtpm keeps the TPM's persistent state in the directory, for the
	// next VM that uses it.
	if _, err := os.Stat(filepath.Join(state, "tpm2-00.permall")); err != nil {
		t.Errorf("the TPM state is not in its directory: %v", err)
	}
	processGone(t, "swtpm", vm.helpers[0].cmd.Process.Pid)
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestOVMF(t *testing.T) {
	for _, tc := range []struct {
		name       string
		secureBoot bool
	}{
		{"plain", false},
		{"secure-boot", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tmpl := filepath.Join(dir, "template.fd")
			if err := copyFile(tmpl, OVMFVars); err != nil {
				t.Fatal(err)
			}
			vars := filepath.Join(dir, "vars.fd")
			before := fileSum(t, tmpl)
			vm := StartT(t, Options{Name: "ovmf-" + tc.name}, OVMF{VarsTemplate: tmpl, Vars: vars, SecureBoot: tc.secureBoot})
			// With no disk, the boot manager falls back to the UEFI shell.
			line := expect(t, vm.Console(), "BdsDxe: loading Boot")
			t.Log(line)
			if err := vm.Stop(); err != nil {
				t.Fatal(err)
			}
			if fileSum(t, tmpl) != before {
				t.Error("the variable store template changed")
			}
			if fileSum(t, vars) == before {
				t.Error("the firmware did not write its boot entries to the VM's variable store")
			}
		})
	}
}

func TestExpectTimeoutAndCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	vm, err := Start(ctx, Options{Name: "cancel"},
		DirectBoot{Kernel: testKernel(t), Cmdline: panicCmdline},
		TPM{})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()
	c := vm.Console()
	expect(t, c, "Linux version 6.1")

	_, err = c.Expect(500*time.Millisecond, "a line no kernel prints")
	if err == nil {
		t.Fatal("Expect found a line that was never printed")
	}
	msg := err.Error()
	for _, want := range []string{`no line containing "a line no kernel prints"`, "deadline exceeded", "last 30 console lines:\n\t[    ", TimeoutScaleEnv} {
		if !strings.Contains(msg, want) {
			t.Errorf("Expect's error does not contain %q:\n%s", want, msg)
		}
	}

	cancel()
	err = waitExit(t, vm)
	if err == nil || !strings.Contains(err.Error(), "qemu was stopped") {
		t.Errorf("Wait after cancelling returned %v, want qemu was stopped", err)
	}
	processGone(t, "qemu", vm.cmd.Process.Pid)
	processGone(t, "swtpm", vm.helpers[0].cmd.Process.Pid)
	if _, err := c.Expect(time.Second, "anything"); err == nil || !strings.Contains(err.Error(), "qemu exited") {
		t.Errorf("Expect after the VM ended returned %v, want qemu exited", err)
	}

	dir := vm.Dir()
	if err := vm.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stop left the VM's directory: %v", err)
	}
}

// TestNetworkAndDisks boots OVMF with a network card on a stream socket and
// an overlay disk. OVMF tries to boot from the network, so the guest sends
// DHCP requests that arrive as frames.
func TestNetworkAndDisks(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "net.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	base := filepath.Join(dir, "base.img")
	if err := os.WriteFile(base, bytes.Repeat([]byte{0xa5}, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	baseSum := fileSum(t, base)
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x42}

	vm := StartT(t, Options{Name: "net"},
		OVMF{},
		StreamNetwork{SocketPath: sock, MAC: mac},
		Disk{Path: base, Overlay: true},
		Disk{Path: base, ReadOnly: true},
		FwCfg{Name: "opt/metropolis.dev/test", String: "hello"},
		RNG{},
	)

	type result struct {
		frame []byte
		err   error
	}
	frames := make(chan result, 1)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			frames <- result{err: err}
			return
		}
		defer conn.Close()
		// Read frames until one comes from the VM's card: OVMF sends
		// DHCP discoveries from it when it tries to boot from the
		// network.
		for {
			f, err := ReadFrame(conn)
			if err != nil || len(f) >= 12 && bytes.Equal(f[6:12], mac) {
				frames <- result{f, err}
				return
			}
		}
	}()
	select {
	case r := <-frames:
		if r.err != nil {
			t.Fatalf("reading a frame from the VM: %v", r.err)
		}
		t.Logf("frame from the VM: %d bytes, to %v", len(r.frame), net.HardwareAddr(r.frame[:6]))
	case <-vm.Done():
		t.Fatalf("qemu exited before sending a frame: %v", vm.Wait())
	case <-time.After(Timeout(bootTimeout)):
		t.Fatalf("no frame from the VM within %v", Timeout(bootTimeout))
	}

	overlay := filepath.Join(vm.Dir(), "2-overlay.qcow2")
	checkOverlay(t, overlay, base)
	if err := vm.Stop(); err != nil {
		t.Fatal(err)
	}
	if fileSum(t, base) != baseSum {
		t.Error("the base image changed")
	}
}

func TestConsoleStreamsLines(t *testing.T) {
	lines := make(chan string, 1000)
	vm := StartT(t, Options{Name: "stream", ConsoleLog: func(l string) {
		select {
		case lines <- l:
		default:
		}
	}}, DirectBoot{Kernel: testKernel(t), Cmdline: panicCmdline})
	re := regexp.MustCompile(`Linux version (\d+\.\d+)\.\d+`)
	m, err := vm.Console().ExpectRegexp(bootTimeout, re)
	if err != nil {
		t.Fatal(err)
	}
	if m[1] != "6.1" {
		t.Errorf("kernel version %s, want 6.1", m[1])
	}
	if err := vm.Stop(); err != nil {
		t.Fatal(err)
	}
	close(lines)
	var streamed []string
	for l := range lines {
		streamed = append(streamed, l)
	}
	if got := vm.Console().Lines(); !equalStrings(streamed, got) {
		t.Errorf("ConsoleLog got %d lines, the transcript has %d", len(streamed), len(got))
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMissingQEMU(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := Start(t.Context(), Options{}, DirectBoot{Kernel: "/nonexistent"})
	if err == nil || !strings.Contains(err.Error(), "install the Debian package qemu-system-x86") {
		t.Errorf("Start without qemu returned %v, want an error naming the package", err)
	}
}

func TestFailingQEMU(t *testing.T) {
	vm := StartT(t, Options{Name: "bad"}, DirectBoot{Kernel: filepath.Join(t.TempDir(), "missing")})
	_, err := vm.Console().Expect(bootTimeout, "anything")
	if err == nil || !strings.Contains(err.Error(), "qemu exited") || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Expect with a failing qemu returned %v, want qemu's error", err)
	}
	if err := waitExit(t, vm); err == nil || !strings.Contains(err.Error(), "qemu failed") {
		t.Errorf("Wait returned %v, want qemu failed", err)
	}
}
