package securebootest

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"metropolis.dev/build/kernel"
	"metropolis.dev/build/secureboot"
	"metropolis.dev/build/uki"
	"metropolis.dev/osbase/efi/ovmfvars"
	"metropolis.dev/osbase/test/qemu"
)

// repoRoot is the repository's root, relative to this package's directory,
// where tests run.
const repoRoot = "../../.."

// cmdline makes the kernel print to the serial console and end the VM when
// it panics, as it does without a root filesystem.
const cmdline = "console=ttyS0 panic=-1"

// inputs are what the test boots: an unsigned UKI built from the pinned
// stub and kernel, our key and a key the firmware does not know, and a
// variable store with our key enrolled.
type inputs struct {
	unsigned []byte
	ours     *secureboot.Key
	other    *secureboot.Key
	vars     string
}

// prepare builds the inputs in the test's temporary directory. The keys
// are new development keys, made as the build makes its key.
func prepare(t *testing.T) *inputs {
	t.Helper()
	dir := t.TempDir()
	vmlinuz, err := pinnedKernel(t.Context())
	if err != nil {
		t.Fatalf("getting the pinned kernel: %v", err)
	}
	stub, err := uki.PinnedStub(t.Context(), repoRoot)
	if err != nil {
		t.Fatalf("getting the pinned UKI stub: %v", err)
	}
	in := &inputs{vars: filepath.Join(dir, "OVMF_VARS.fd")}
	in.unsigned, err = uki.Build(stub, uki.Contents{
		Kernel:    vmlinuz,
		Cmdline:   cmdline,
		OSRelease: []byte("NAME=Metropolis\nID=metropolis\n"),
	})
	if err != nil {
		t.Fatalf("building the UKI: %v", err)
	}
	if in.ours, err = secureboot.EnsureDevKey(filepath.Join(dir, "ours"), io.Discard); err != nil {
		t.Fatal(err)
	}
	if in.other, err = secureboot.EnsureDevKey(filepath.Join(dir, "other"), io.Discard); err != nil {
		t.Fatal(err)
	}
	template, err := os.ReadFile(qemu.OVMFVars)
	if err != nil {
		t.Fatalf("OVMF variable store template (Debian package ovmf): %v", err)
	}
	esl := secureboot.SignatureList(in.ours.Certificate)
	vars, err := ovmfvars.EnrollSecureBoot(template, ovmfvars.SecureBootKeys{PK: esl, KEK: esl, DB: esl})
	if err != nil {
		t.Fatalf("enrolling our key: %v", err)
	}
	if err := os.WriteFile(in.vars, vars, 0o644); err != nil {
		t.Fatal(err)
	}
	return in
}

// pinnedKernel returns the kernel image (a bzImage) of the pinned Debian
// kernel package, fetched and unpacked into the build cache on first use.
func pinnedKernel(ctx context.Context) ([]byte, error) {
	pkg, err := kernel.Pinned(ctx, repoRoot)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(pkg.Vmlinuz())
}
