package tpm_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"

	"metropolis.dev/osbase/test/ktest"
	"metropolis.dev/osbase/test/qemu"
	"metropolis.dev/osbase/tpm"
)

// The tests below run in ktest VMs with a TPM emulated by swtpm. The first
// VM seals a blob and leaves it on a disk; the second, with a TPM of its
// own, finds it there and must fail to unseal it.

// exchangeSerial names the disk that carries a blob from one VM to the
// next.
const exchangeSerial = "tpm-exchange"

// secret is what the tests seal.
var secret = []byte("the node unlock key, or so")

func TestKernel(t *testing.T) {
	dir := t.TempDir()
	exchange := filepath.Join(dir, "exchange.img")
	if err := os.WriteFile(exchange, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, tests, tpmState string) {
		ktest.Run(t, ktest.Options{
			Run: tests,
			Devices: []qemu.Device{
				qemu.TPM{StateDir: tpmState},
				qemu.Disk{Path: exchange, Serial: exchangeSerial},
			},
			Modules: []string{"virtio_pci", "virtio_blk"},
			// qemu's direct boot loads the initramfs over the ACPI
			// tables when a TPM makes them larger, which hides the
			// TPM from the kernel: it probes for it at the standard
			// address instead.
			Cmdline: "tpm_tis.force=1 tpm_tis.interrupts=0",
		})
	}
	if !t.Run("seal", func(t *testing.T) { run(t, "^TestVMSeal$", filepath.Join(dir, "tpm-a")) }) {
		return
	}
	t.Run("other TPM", func(t *testing.T) { run(t, "^TestVMOtherTPM$", filepath.Join(dir, "tpm-b")) })
}

func openTPM(t *testing.T) *tpm.TPM {
	t.Helper()
	tp, err := tpm.Open(tpm.DefaultPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.Close() })
	return tp
}

// extendPCR extends a PCR of the SHA-256 bank, as firmware measuring
// something would.
func extendPCR(t *testing.T, pcr int, data string) {
	t.Helper()
	dev, err := linuxtpm.Open(tpm.DefaultPath)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	digest := sha256.Sum256([]byte(data))
	_, err = tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)},
		Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: digest[:]}}},
	}.Execute(dev)
	if err != nil {
		t.Fatalf("extending PCR %d: %v", pcr, err)
	}
}

func TestVMSeal(t *testing.T) {
	ktest.OnlyInVM(t)
	tp := openTPM(t)

	r1, err := tp.GenerateRandom(100)
	if err != nil || len(r1) != 100 {
		t.Fatalf("GenerateRandom(100) = %d bytes, %v", len(r1), err)
	}
	if r2, _ := tp.GenerateRandom(100); bytes.Equal(r1, r2) || bytes.Equal(r1, make([]byte, 100)) {
		t.Error("GenerateRandom returns the same bytes twice, or zeros")
	}

	// More PCRs than one TPM2_PCR_Read returns.
	all := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 16, 23}
	pcrs, err := tp.ReadPCRs(all)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range all {
		if len(pcrs[i]) != 32 {
			t.Errorf("PCR %d has %d bytes, want 32", i, len(pcrs[i]))
		}
	}
	if _, err := tp.ReadPCRs([]int{24}); err == nil {
		t.Error("ReadPCRs of PCR 24 succeeded")
	}

	blob, err := tp.Seal(secret, []int{7})
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	t.Logf("a %d-byte secret sealed to PCR 7 is a %d-byte blob", len(secret), len(blob))
	if got, err := tp.Unseal(blob); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Unseal = %q, %v; want %q", got, err, secret)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), tpm.MaxDataSize/16)
	if b, err := tp.Seal(big, []int{0, 7}); err != nil {
		t.Errorf("Seal of %d bytes: %v", len(big), err)
	} else if got, err := tp.Unseal(b); err != nil || !bytes.Equal(got, big) {
		t.Errorf("Unseal of %d bytes: got %d bytes, %v", len(big), len(got), err)
	}
	if _, err := tp.Seal(append(big, 0), []int{7}); err == nil {
		t.Error("Seal of more than MaxDataSize succeeded")
	}

	// A new connection has none of the old one's objects: the storage
	// root key is derived again, and is the same.
	tp.Close()
	tp = openTPM(t)
	if got, err := tp.Unseal(blob); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Unseal through a new connection = %q, %v", got, err)
	}

	// Damaged blobs.
	for _, at := range []int{len(blob) - 1, len(blob) - 40, len(blob) / 2} {
		bad := bytes.Clone(blob)
		bad[at] ^= 0x80
		if _, err := tp.Unseal(bad); !errors.Is(err, tpm.ErrInvalidBlob) {
			t.Errorf("Unseal of a blob with byte %d of %d changed: got %v, want ErrInvalidBlob", at, len(blob), err)
		}
	}

	// The next VM, with another TPM, gets the blob.
	ex, err := os.OpenFile(ktest.DiskBySerial(t, exchangeSerial), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	if _, err := ex.Write(binary.BigEndian.AppendUint32(nil, uint32(len(blob)))); err != nil {
		t.Fatal(err)
	}
	if _, err := ex.Write(blob); err != nil {
		t.Fatal(err)
	}
	if err := ex.Sync(); err != nil {
		t.Fatal(err)
	}

	// Once PCR 7 changes, as it does when the Secure Boot configuration
	// does, the blob does not unseal any more. A blob sealed to PCR 16
	// only still does.
	other, err := tp.Seal(secret, []int{16})
	if err != nil {
		t.Fatal(err)
	}
	extendPCR(t, 7, "secure boot got switched off")
	_, err = tp.Unseal(blob)
	if !errors.Is(err, tpm.ErrPolicyMismatch) {
		t.Fatalf("Unseal after PCR 7 changed: got %v, want ErrPolicyMismatch", err)
	}
	if !strings.Contains(err.Error(), "PCR 7 was") {
		t.Errorf("the error does not say that PCR 7 changed: %v", err)
	}
	t.Log(err)
	if got, err := tp.Unseal(other); err != nil || !bytes.Equal(got, secret) {
		t.Errorf("Unseal of a blob sealed to PCR 16 = %q, %v", got, err)
	}
	// Sealing to the new value works.
	again, err := tp.Seal(secret, []int{7})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tp.Unseal(again); err != nil || !bytes.Equal(got, secret) {
		t.Errorf("Unseal of a blob sealed after the change = %q, %v", got, err)
	}
}

func TestVMOtherTPM(t *testing.T) {
	ktest.OnlyInVM(t)
	ex, err := os.ReadFile(ktest.DiskBySerial(t, exchangeSerial))
	if err != nil {
		t.Fatal(err)
	}
	n := binary.BigEndian.Uint32(ex)
	if n == 0 || int(n) > len(ex)-4 {
		t.Fatalf("the exchange disk holds no blob (length %d)", n)
	}
	blob := ex[4 : 4+n]
	tp := openTPM(t)
	_, err = tp.Unseal(blob)
	if !errors.Is(err, tpm.ErrWrongTPM) {
		t.Fatalf("Unseal with another TPM: got %v, want ErrWrongTPM", err)
	}
	t.Log(err)
	// This TPM seals its own.
	own, err := tp.Seal(secret, []int{7})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tp.Unseal(own); err != nil || !bytes.Equal(got, secret) {
		t.Errorf("Unseal = %q, %v", got, err)
	}
}
