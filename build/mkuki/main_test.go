package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/pe"
	"encoding/binary"
	"errors"
	"flag"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"metropolis.dev/build/secureboot"
	"metropolis.dev/build/uki"
	"metropolis.dev/build/version"
	"metropolis.dev/osbase/verity"
)

// repoRoot is the repository this test runs in.
const repoRoot = "../.."

// fakeKernel returns random bytes with a setup header that passes for an
// x86-64 kernel with the EFI handover protocol and a 2047-byte command line
// limit (Linux, Documentation/arch/x86/boot.rst).
func fakeKernel() []byte {
	k := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{}).Read(k)
	le := binary.LittleEndian
	le.PutUint16(k[0x1fe:], 0xaa55) // boot_flag
	copy(k[0x202:], "HdrS")         // header
	le.PutUint16(k[0x206:], 0x20f)  // version 2.15
	k[0x234] = 1                    // relocatable_kernel
	le.PutUint16(k[0x236:], 0x7f)   // xloadflags
	le.PutUint32(k[0x238:], 2047)   // cmdline_size
	le.PutUint32(k[0x264:], 0x190)  // handover_offset
	return k
}

// inputs are files for a run.
type inputs struct {
	dir, kernel, initramfs, osrel, stub string
}

func writeInputs(t *testing.T) inputs {
	t.Helper()
	stub, err := uki.PinnedStub(context.Background(), repoRoot)
	if err != nil {
		t.Fatalf("getting the pinned stub: %v", err)
	}
	dir := t.TempDir()
	in := inputs{
		dir:       dir,
		kernel:    filepath.Join(dir, "vmlinuz"),
		initramfs: filepath.Join(dir, "initramfs.cpio"),
		osrel:     filepath.Join(dir, "os-release"),
		stub:      filepath.Join(dir, "stub.efi"),
	}
	for path, content := range map[string][]byte{
		in.kernel:    fakeKernel(),
		in.initramfs: []byte("070701 an initramfs"),
		in.osrel:     []byte("ID=test\n"),
		in.stub:      stub,
	} {
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return in
}

// releaseKey writes a key as an operator would pass it and returns the
// paths of its key and certificate.
func releaseKey(t *testing.T) (string, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "release")
	if _, err := secureboot.EnsureDevKey(dir, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, secureboot.DevKeyFile), filepath.Join(dir, secureboot.DevCertFile)
}

func runOK(t *testing.T, args ...string) string {
	t.Helper()
	var stderr bytes.Buffer
	if err := run(context.Background(), args, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	return stderr.String()
}

func section(t *testing.T, path, name string) []byte {
	t.Helper()
	f, err := pe.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := f.Section(name)
	if s == nil {
		t.Fatalf("%s has no %s section", path, name)
	}
	data, err := s.Data()
	if err != nil {
		t.Fatal(err)
	}
	return data[:s.VirtualSize]
}

func sbverify(t *testing.T, cert, image string) {
	t.Helper()
	if _, err := exec.LookPath("sbverify"); err != nil {
		t.Fatal("sbverify is missing: install Debian package sbsigntool (go run ./build/prereqs sbsigntool)")
	}
	if out, err := exec.Command("sbverify", "--cert", cert, image).CombinedOutput(); err != nil {
		t.Errorf("sbverify: %v\n%s", err, out)
	}
}

// TestRunExplicit passes every input and a release key: the output must be
// the signed UKI of exactly those inputs, and the same on a second run.
func TestRunExplicit(t *testing.T) {
	in := writeInputs(t)
	key, cert := releaseKey(t)
	out := filepath.Join(in.dir, "uki.efi")
	args := []string{"-kernel", in.kernel, "-initramfs", in.initramfs, "-cmdline", "console=ttyS0 quiet",
		"-stub", in.stub, "-osrel", in.osrel, "-key", key, "-cert", cert, "-out", out}
	if stderr := runOK(t, args...); stderr != "" {
		t.Errorf("a release build printed %q", stderr)
	}
	first, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	sbverify(t, cert, out)
	for name, want := range map[string]string{
		uki.SectionCmdline:   "console=ttyS0 quiet",
		uki.SectionOSRelease: "ID=test\n",
		uki.SectionInitrd:    "070701 an initramfs",
	} {
		if got := string(section(t, out, name)); got != want {
			t.Errorf("section %s holds %q, want %q", name, got, want)
		}
	}
	if !bytes.Equal(section(t, out, uki.SectionLinux), fakeKernel()) {
		t.Error("section .linux does not hold the kernel")
	}

	runOK(t, args...)
	second, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Error("a second run with the same inputs and key wrote other bytes")
	}
	if entries, _ := os.ReadDir(in.dir); len(entries) != 5 {
		t.Errorf("%d files in the output directory, want the 4 inputs and the UKI", len(entries))
	}
}

// TestRunDefaults takes the stub from the pin and the version from git, and
// signs with a development key, which it must announce.
func TestRunDefaults(t *testing.T) {
	in := writeInputs(t)
	devKeys := filepath.Join(t.TempDir(), "dev")
	out := filepath.Join(in.dir, "uki.efi")
	stderr := runOK(t, "-kernel", in.kernel, "-cmdline", "quiet", "-out", out, "-repo", repoRoot, "-dev-key-dir", devKeys)
	if !strings.Contains(stderr, "DEVELOPMENT Secure Boot key in "+devKeys) {
		t.Errorf("signing with the development key printed %q, want a notice", stderr)
	}
	sbverify(t, filepath.Join(devKeys, secureboot.DevCertFile), out)

	v, err := version.FromGit(context.Background(), repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	if got := section(t, out, uki.SectionOSRelease); !bytes.Equal(got, v.OSRelease()) {
		t.Errorf("os-release:\n%s\nwant:\n%s", got, v.OSRelease())
	}
	f, err := pe.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Section(uki.SectionInitrd) != nil {
		t.Error("a UKI without -initramfs has an .initrd section")
	}
}

func TestRunVerity(t *testing.T) {
	in := writeInputs(t)
	table := &verity.MappingTable{
		DataDevice:     "PARTLABEL=METROPOLIS-SYSTEM-X",
		HashDevice:     "PARTLABEL=METROPOLIS-SYSTEM-X",
		DataBlocks:     100,
		HashStartBlock: 100,
		RootHash:       sha256.Sum256(nil),
		Salt:           []byte{1, 2, 3},
	}
	tableFile := filepath.Join(in.dir, "table")
	// mkverity prints the table with a newline.
	if err := os.WriteFile(tableFile, []byte(table.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(in.dir, "uki.efi")
	runOK(t, "-kernel", in.kernel, "-cmdline", "quiet", "-verity-table", tableFile, "-out", out,
		"-stub", in.stub, "-osrel", in.osrel, "-dev-key-dir", filepath.Join(t.TempDir(), "dev"))
	want, err := uki.AppendVerityRoot("quiet", table)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(section(t, out, uki.SectionCmdline)); got != want {
		t.Errorf("command line %q, want %q", got, want)
	}
}

func TestRunErrors(t *testing.T) {
	in := writeInputs(t)
	key, cert := releaseKey(t)
	badTable := filepath.Join(in.dir, "bad-table")
	if err := os.WriteFile(badTable, []byte("0 8 linear /dev/sda 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	goodTable := filepath.Join(in.dir, "table")
	table := verity.MappingTable{DataDevice: "/dev/vda2", HashDevice: "/dev/vda2", DataBlocks: 1, HashStartBlock: 1}
	if err := os.WriteFile(goodTable, []byte(table.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(in.dir, "uki.efi")
	common := []string{"-stub", in.stub, "-osrel", in.osrel, "-key", key, "-cert", cert, "-out", out}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no kernel", []string{"-out", out}, "-kernel and -out are required"},
		{"no output", []string{"-kernel", in.kernel}, "-kernel and -out are required"},
		{"key without certificate", []string{"-kernel", in.kernel, "-out", out, "-key", key}, "-key and -cert go together"},
		{"release and development key", []string{"-kernel", in.kernel, "-out", out, "-key", key, "-cert", cert, "-dev-key-dir", in.dir}, "-dev-key-dir is for the development key"},
		{"arguments", []string{"-kernel", in.kernel, "-out", out, "extra"}, `unexpected arguments ["extra"]`},
		{"unknown flag", []string{"-kernal", in.kernel}, "flag provided but not defined"},
		{"missing kernel", append([]string{"-kernel", filepath.Join(in.dir, "missing"), "-cmdline", "quiet"}, common...), "no such file"},
		{"not a kernel", append([]string{"-kernel", in.osrel, "-cmdline", "quiet"}, common...), "kernel: 8 bytes"},
		{"no command line", append([]string{"-kernel", in.kernel}, common...), "command line is empty"},
		{"bad verity table", append([]string{"-kernel", in.kernel, "-verity-table", badTable}, common...), "bad-table: verity table"},
		{"verity table and root", append([]string{"-kernel", in.kernel, "-cmdline", "root=/dev/sda", "-verity-table", goodTable}, common...), "sets root already"},
		{"key mismatch", []string{"-kernel", in.kernel, "-cmdline", "quiet", "-stub", in.stub, "-osrel", in.osrel, "-key", key, "-cert", in.osrel, "-out", out}, "holds no PEM block"},
		{"bad stub", []string{"-kernel", in.kernel, "-cmdline", "quiet", "-stub", in.kernel, "-osrel", in.osrel, "-key", key, "-cert", cert, "-out", out}, "stub: parsing PE image"},
		{"output directory missing", []string{"-kernel", in.kernel, "-cmdline", "quiet", "-stub", in.stub, "-osrel", in.osrel, "-key", key, "-cert", cert, "-out", filepath.Join(in.dir, "no", "uki.efi")}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run: got error %v, want one containing %q", err, tc.want)
			}
			if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a failed run left %s behind", out)
			}
		})
	}
}

func TestRunHelp(t *testing.T) {
	var stderr bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("run -h: got %v, want flag.ErrHelp", err)
	}
	if !strings.Contains(stderr.String(), "-verity-table") {
		t.Errorf("usage does not describe the flags:\n%s", stderr.String())
	}
}
