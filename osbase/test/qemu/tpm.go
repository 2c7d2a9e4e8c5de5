package qemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-tpm/legacy/tpm2"
)

// TPM gives the VM a TPM 2.0, emulated by an swtpm process, on the TIS
// interface that Linux and OVMF find through ACPI.
//
// A new TPM is manufactured with only the SHA-256 PCR bank active, as
// swtpm_setup and libvirt make them and as most machines ship. A fresh
// swtpm state would otherwise have four banks (SHA-1, SHA-256, SHA-384,
// SHA-512), and the firmware, the UKI's stub and Linux would hash
// everything they measure four times: under TCG that alone adds about
// five seconds to every boot. The node seals and measures with SHA-256
// only.
type TPM struct {
	// StateDir holds the TPM's persistent state. A VM started again with
	// the same directory finds the same TPM (keys, NV indices, PCR banks);
	// PCRs start afresh with every VM. Empty means a new directory in the
	// VM's directory. It is created if needed, and an empty one gets a
	// newly manufactured TPM.
	StateDir string
}

// tpmStateFile is where swtpm keeps a TPM 2.0's permanent state in its
// state directory.
const tpmStateFile = "tpm2-00.permall"

// manufactureTimeout bounds the manufacturing of a new TPM: starting
// swtpm, two commands and its exit.
const manufactureTimeout = 30 * time.Second

func (t TPM) stateDir(s *Setup) string {
	if t.StateDir != "" {
		return t.StateDir
	}
	return s.File("tpm")
}

func (t TPM) socket(s *Setup) string { return s.File("swtpm.sock") }

// Prepare manufactures the TPM if its state directory holds none, then
// starts swtpm. It listens on a socket that exists before swtpm runs, so
// that qemu can connect right away.
func (t TPM) Prepare(ctx context.Context, s *Setup) error {
	swtpm, err := exec.LookPath("swtpm")
	if err != nil {
		return fmt.Errorf("swtpm not found (install the Debian package swtpm): %w", err)
	}
	dir := t.stateDir(s)
	if strings.Contains(dir, ",") {
		return fmt.Errorf("TPM state directory %q contains a comma, which swtpm cannot parse", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating TPM state directory: %w", err)
	}
	if err := manufactureTPM(ctx, swtpm, dir, s.File("swtpm-manufacture.sock")); err != nil {
		return fmt.Errorf("manufacturing a TPM in %s: %w", dir, err)
	}
	sock := t.socket(s)
	if err := checkSocketPath(sock); err != nil {
		return err
	}
	l, err := listenUnix(sock)
	if err != nil {
		return fmt.Errorf("creating swtpm socket: %w", err)
	}
	defer l.Close()
	cmd := exec.Command(swtpm, "socket", "--tpm2",
		"--tpmstate", "dir="+dir,
		"--ctrl", "type=unixio,fd=3",
		// Exit when qemu closes the connection.
		"--terminate",
	)
	cmd.ExtraFiles = []*os.File{l}
	return s.StartHelper("swtpm", cmd)
}

// manufactureTPM creates the TPM state in dir unless there is one already:
// it runs swtpm once, with its command channel on a unix socket at sock,
// leaves only the SHA-256 PCR bank allocated, and shuts the TPM down, which
// makes swtpm write the state and exit.
func manufactureTPM(ctx context.Context, swtpm, dir, sock string) error {
	if _, err := os.Stat(filepath.Join(dir, tpmStateFile)); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := checkSocketPath(sock); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout(manufactureTimeout))
	defer cancel()
	defer os.Remove(sock)
	out := newTailBuffer(helperOutputLimit)
	cmd, err := startCommandTPM(ctx, swtpm, dir, sock, out)
	if err != nil {
		return err
	}
	cmdErr := allocateSHA256Bank(ctx, sock)
	// swtpm exits once the connection is closed (--terminate).
	if err := cmd.Wait(); err != nil && cmdErr == nil {
		cmdErr = fmt.Errorf("swtpm: %w", err)
	}
	if cmdErr != nil {
		return fmt.Errorf("%w; swtpm said: %s", cmdErr, out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, tpmStateFile)); err != nil {
		return fmt.Errorf("swtpm wrote no state: %w", err)
	}
	return nil
}

// startCommandTPM starts swtpm on the TPM state in dir with its command
// channel on a unix socket at sock, and no control channel: swtpm powers
// the TPM on and sends TPM2_Startup itself. It exits once the connection
// to the socket is closed. Its output goes to out.
func startCommandTPM(ctx context.Context, swtpm, dir, sock string, out io.Writer) (*exec.Cmd, error) {
	l, err := listenUnix(sock)
	if err != nil {
		return nil, fmt.Errorf("creating swtpm socket: %w", err)
	}
	defer l.Close()
	cmd := exec.CommandContext(ctx, swtpm, "socket", "--tpm2",
		"--tpmstate", "dir="+dir,
		"--server", "type=unixio,fd=3",
		"--flags", "not-need-init,startup-clear",
		"--terminate",
	)
	cmd.ExtraFiles = []*os.File{l}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting swtpm: %w", err)
	}
	return cmd, nil
}

// allocateSHA256Bank connects to a freshly started swtpm at sock, allocates
// all PCRs in the SHA-256 bank and none in the others, and shuts the TPM
// down so that swtpm saves the allocation, which takes effect from the
// TPM's next start.
func allocateSHA256Bank(ctx context.Context, sock string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return fmt.Errorf("connecting to swtpm: %w", err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	all := make([]int, 24)
	for i := range all {
		all[i] = i
	}
	banks := []tpm2.PCRSelection{
		{Hash: tpm2.AlgSHA1, PCRs: []int{}},
		{Hash: tpm2.AlgSHA256, PCRs: all},
		{Hash: tpm2.AlgSHA384, PCRs: []int{}},
		{Hash: tpm2.AlgSHA512, PCRs: []int{}},
	}
	// The platform hierarchy's authorization is empty until firmware
	// sets one, which no firmware has done yet.
	auth := tpm2.AuthCommand{Session: tpm2.HandlePasswordSession, Attributes: tpm2.AttrContinueSession}
	if err := tpm2.PCRAllocate(conn, tpm2.HandlePlatform, auth, banks); err != nil {
		return fmt.Errorf("allocating the SHA-256 PCR bank: %w", err)
	}
	if err := tpm2.Shutdown(conn, tpm2.StartupClear); err != nil {
		return fmt.Errorf("shutting the TPM down: %w", err)
	}
	return nil
}

// listenUnix returns a listening unix stream socket at path, as a blocking
// file descriptor that a child process can use.
func listenUnix(path string) (*os.File, error) {
	// A socket left by an earlier VM in the same directory is stale.
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	if err := syscall.Listen(fd, 1); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// Args connects qemu's TPM emulator backend to swtpm.
func (t TPM) Args(s *Setup) ([]string, error) {
	chardev, tpmdev := s.ID("tpmchr"), s.ID("tpm")
	return []string{
		"-chardev", "socket,id=" + chardev + ",path=" + escapeOpt(t.socket(s)),
		"-tpmdev", "emulator,id=" + tpmdev + ",chardev=" + chardev,
		"-device", "tpm-tis,tpmdev=" + tpmdev,
	}, nil
}
