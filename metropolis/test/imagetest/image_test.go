package imagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"metropolis.dev/build/secureboot"
	"metropolis.dev/osbase/efi/ovmfvars"
	"metropolis.dev/osbase/efivarfs"
	"metropolis.dev/osbase/gpt"
	"metropolis.dev/osbase/test/qemu"
)

// repoRoot is the repository's root, relative to this package's directory,
// where tests run.
const repoRoot = "../../.."

// Base timeouts under TCG on 2 cores (see qemu.Timeout).
const (
	// bootTimeout is from qemu's start to the core's banner under OVMF
	// with a TPM, measured at about 20 s alone on the machine.
	bootTimeout = 90 * time.Second
	// buildTimeout is for one image build, about 15 s with the kernel
	// package cached and a few minutes without.
	buildTimeout = 10 * time.Minute
)

// summary is the part of mkimage's -summary output the tests use.
type summary struct {
	Version     string `json:"version"`
	RootHash    string `json:"root_hash"`
	SystemBytes int64  `json:"system_bytes"`
	Partitions  []struct {
		Name   string `json:"name"`
		Offset int64  `json:"offset"`
		Size   int64  `json:"size"`
	} `json:"partitions"`
}

// partition returns the byte range of the named partition.
func (s *summary) partition(t *testing.T, name string) (offset, size int64) {
	t.Helper()
	for _, p := range s.Partitions {
		if p.Name == name {
			return p.Offset, p.Size
		}
	}
	t.Fatalf("summary has no partition %s", name)
	return 0, 0
}

// built is an image built by mkimage.
type built struct {
	path    string
	summary summary
}

// buildImage runs mkimage with both slots into a new directory under dir.
func buildImage(ctx context.Context, dir string) (*built, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	img := filepath.Join(dir, "node.img")
	sum := filepath.Join(dir, "summary.json")
	ctx, cancel := context.WithTimeout(ctx, qemu.Timeout(buildTimeout))
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "./build/mkimage", "-out", img, "-slot-b", "-summary", sum,
		"-key", filepath.Join(keyDir, secureboot.DevKeyFile), "-cert", filepath.Join(keyDir, secureboot.DevCertFile))
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mkimage: %w\n%s", err, out)
	}
	j, err := os.ReadFile(sum)
	if err != nil {
		return nil, err
	}
	b := &built{path: img}
	if err := json.Unmarshal(j, &b.summary); err != nil {
		return nil, fmt.Errorf("mkimage summary: %w", err)
	}
	return b, nil
}

// workDir holds the images of this test binary.
var workDir string

// keyDir holds the key the test images are signed with, made for this test
// binary, so that TestSecureBoot knows which certificate to enroll.
var keyDir string

func TestMain(m *testing.M) {
	var err error
	workDir, err = os.MkdirTemp("", "imagetest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	keyDir = filepath.Join(workDir, "key")
	if _, err := secureboot.EnsureDevKey(keyDir, io.Discard); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(workDir)
	os.Exit(code)
}

var sharedImage = sync.OnceValues(func() (*built, error) {
	return buildImage(context.Background(), filepath.Join(workDir, "image"))
})

// image returns the image shared by the tests, building it first.
func image(t *testing.T) *built {
	t.Helper()
	b, err := sharedImage()
	if err != nil {
		t.Fatalf("building the image: %v", err)
	}
	return b
}

// bootVM boots disk (raw, or qcow2 with format) under OVMF with a TPM.
func bootVM(t *testing.T, name, disk, format string, ovmf qemu.OVMF) *qemu.VM {
	t.Helper()
	return qemu.StartT(t, qemu.Options{Name: name, MemoryMiB: 1024},
		ovmf,
		qemu.TPM{},
		qemu.Disk{Path: disk, Format: format, Overlay: true},
	)
}

// expect waits for a console line containing substr.
func expect(t *testing.T, vm *qemu.VM, within time.Duration, substr string) string {
	t.Helper()
	line, err := vm.Console().Expect(within, substr)
	if err != nil {
		t.Fatal(err)
	}
	return line
}

// expectBanner waits for the core's banner and checks the slot, system
// partition, root hash and Secure Boot state it reports.
func expectBanner(t *testing.T, vm *qemu.VM, img *built, slot, device, secureBoot string) {
	t.Helper()
	start := time.Now()
	expect(t, vm, bootTimeout, "stage1: booting slot "+slot+", system root hash "+img.summary.RootHash)
	// A failed boot halts the VM rather than ending it: look for its
	// message too, so as not to wait for the timeout.
	ctx, cancel := context.WithTimeout(t.Context(), qemu.Timeout(bootTimeout))
	defer cancel()
	banner := "Metropolis node " + img.summary.Version
	line, err := vm.Console().ExpectFunc(ctx, "the banner or a failed boot", func(l string) bool {
		return strings.Contains(l, banner) || strings.Contains(l, "stage1: boot stopped") || strings.Contains(l, "Kernel panic")
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line, banner) {
		t.Fatalf("boot failed: %s", line)
	}
	t.Logf("%v: %s", time.Since(start).Round(time.Millisecond), line)
	expect(t, vm, time.Second, "slot:        "+slot)
	expect(t, vm, time.Second, "system:      "+device+", dm-verity root hash "+img.summary.RootHash)
	expect(t, vm, time.Second, "Secure Boot: "+secureBoot)
	expect(t, vm, time.Second, "TPM:         present (tpm0, TPM 2.0)")
	expect(t, vm, time.Second, "node core up")
}

func TestBootSlotA(t *testing.T) {
	img := image(t)
	vm := bootVM(t, "slot-a", img.path, "raw", qemu.OVMF{})
	// The firmware has no Secure Boot keys enrolled (setup mode).
	expectBanner(t, vm, img, "A", "vda2", "disabled")
}

// TestSecureBoot boots the image with the signing key enrolled in the
// firmware and Secure Boot on: the firmware verifies the UKI, and the node
// core reports Secure Boot as enforced.
func TestSecureBoot(t *testing.T) {
	img := image(t)
	esl, err := os.ReadFile(filepath.Join(keyDir, secureboot.DevSignatureListFile))
	if err != nil {
		t.Fatal(err)
	}
	template, err := os.ReadFile(qemu.OVMFVars)
	if err != nil {
		t.Fatal(err)
	}
	enrolled, err := ovmfvars.EnrollSecureBoot(template, ovmfvars.SecureBootKeys{PK: esl, KEK: esl, DB: esl})
	if err != nil {
		t.Fatalf("enrolling the signing key: %v", err)
	}
	vars := filepath.Join(t.TempDir(), "vars.fd")
	if err := os.WriteFile(vars, enrolled, 0o644); err != nil {
		t.Fatal(err)
	}
	vm := bootVM(t, "secure-boot", img.path, "raw", qemu.OVMF{SecureBoot: true, Vars: vars})
	expectBanner(t, vm, img, "A", "vda2", "enabled")
}

// TestCorruptedSystem flips one byte of the node core's first block in
// SYSTEM-A, which stage-1 makes the kernel read when it starts the core.
func TestCorruptedSystem(t *testing.T) {
	img := image(t)
	partOffset, _ := img.summary.partition(t, gpt.NameMetropolisSystemA)
	block := findELFBlock(t, img.path, partOffset, img.summary.SystemBytes)
	offset := partOffset + block*4096 + 0x321

	f, err := os.Open(img.path)
	if err != nil {
		t.Fatal(err)
	}
	orig := make([]byte, 1)
	_, err = f.ReadAt(orig, offset)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(t.TempDir(), "corrupt.qcow2")
	if err := qemu.CreateOverlay(t.Context(), overlay, img.path, "raw"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "qemu-io", "-f", "qcow2", "-c",
		fmt.Sprintf("write -P %d %d 1", orig[0]^0x01, offset), overlay)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("flipping a byte with qemu-io: %v\n%s", err, out)
	}

	vm := bootVM(t, "corrupt", overlay, "qcow2", qemu.OVMF{})
	expect(t, vm, bootTimeout, "stage1: booting slot A")
	m, err := vm.Console().ExpectRegexp(bootTimeout, regexp.MustCompile(`device-mapper: verity: [0-9:]+: data block ([0-9]+) is corrupted`))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := strconv.ParseInt(m[1], 10, 64); got != block {
		t.Errorf("kernel reports data block %d corrupted, want %d: %s", got, block, m[0])
	}
	expect(t, vm, bootTimeout, "Kernel panic - not syncing: dm-verity device corrupted")
	if tr := vm.Console().Transcript(); strings.Contains(tr, "Metropolis node") {
		t.Errorf("the node core started from a corrupted system:\n%s", tr)
	}
}

// findELFBlock returns the index of the single 4096-byte block of the
// system image at offset in the file at path that starts an ELF executable
// (ET_EXEC): the node core, the only static program in the system image.
// The programs and libraries from Debian are position-independent
// (ET_DYN).
func findELFBlock(t *testing.T, path string, offset, size int64) int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	found := int64(-1)
	buf := make([]byte, 4096)
	for i := int64(0); i*4096 < size; i++ {
		if _, err := f.ReadAt(buf, offset+i*4096); err != nil {
			t.Fatal(err)
		}
		if bytes.HasPrefix(buf, []byte("\x7fELF")) && binary.LittleEndian.Uint16(buf[16:]) == uint16(elf.ET_EXEC) {
			if found >= 0 {
				t.Fatalf("system image has ELF executables in blocks %d and %d, want one", found, i)
			}
			found = i
		}
	}
	if found < 0 {
		t.Fatal("found no ELF executable in the system image")
	}
	return found
}

// bootEntryB is the number of the boot entry TestBootSlotB creates.
const bootEntryB = 0x0100

// TestBootSlotB selects slot B the way an update does: a boot entry for
// slot B's UKI and BootNext pointing at it, written into the VM's firmware
// variable store before it starts.
func TestBootSlotB(t *testing.T) {
	img := image(t)
	f, err := os.Open(img.path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	table, _, err := gpt.Read(f, st.Size())
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	esp := table.Partitions[0]
	if esp == nil || esp.Name != gpt.NameESP {
		t.Fatalf("partition 1 is %+v, want the ESP", esp)
	}
	option := &efivarfs.LoadOption{
		Attributes:  efivarfs.LoadOptionActive,
		Description: "Metropolis slot B",
		FilePath: efivarfs.DevicePath{
			efivarfs.HardDrive{PartitionNumber: 1, Start: esp.FirstLBA, Size: esp.LastLBA - esp.FirstLBA + 1, PartitionGUID: esp.ID},
			efivarfs.FilePath(`\EFI\metropolis\boot-b.efi`),
		},
	}
	entry, err := option.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	template, err := os.ReadFile(qemu.OVMFVars)
	if err != nil {
		t.Fatal(err)
	}
	store, err := ovmfvars.Parse(template)
	if err != nil {
		t.Fatal(err)
	}
	attrs := uint32(ovmfvars.AttrNonVolatile | ovmfvars.AttrBootServiceAccess | ovmfvars.AttrRuntimeAccess)
	for _, v := range []ovmfvars.Variable{
		{Name: efivarfs.BootEntryName(bootEntryB), Vendor: ovmfvars.GlobalVariableGUID, Attributes: attrs, Data: entry},
		{Name: "BootNext", Vendor: ovmfvars.GlobalVariableGUID, Attributes: attrs, Data: binary.LittleEndian.AppendUint16(nil, bootEntryB)},
	} {
		if err := store.Set(v); err != nil {
			t.Fatalf("setting %s: %v", v.Name, err)
		}
	}
	vars := filepath.Join(t.TempDir(), "vars.fd")
	if err := os.WriteFile(vars, store.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	vm := bootVM(t, "slot-b", img.path, "raw", qemu.OVMF{Vars: vars})
	expect(t, vm, bootTimeout, `Boot0100 "Metropolis slot B"`)
	expectBanner(t, vm, img, "B", "vda3", "disabled")
}

// TestReproducible builds the image a second time and compares it with the
// shared one byte for byte.
func TestReproducible(t *testing.T) {
	first := image(t)
	second, err := buildImage(t.Context(), filepath.Join(workDir, "second"))
	if err != nil {
		t.Fatalf("building the image again: %v", err)
	}
	if first.summary.RootHash != second.summary.RootHash {
		t.Errorf("root hashes differ: %s and %s", first.summary.RootHash, second.summary.RootHash)
	}
	a, b := fileHash(t, first.path), fileHash(t, second.path)
	if a == b {
		return
	}
	t.Errorf("images differ: sha256 %x and %x", a, b)
	for _, p := range first.summary.Partitions {
		if x, y := rangeHash(t, first.path, p.Offset, p.Size), rangeHash(t, second.path, p.Offset, p.Size); x != y {
			t.Errorf("partition %s differs", p.Name)
		}
	}
}

func fileHash(t *testing.T, path string) [sha256.Size]byte {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return rangeHash(t, path, 0, st.Size())
}

func rangeHash(t *testing.T, path string, offset, size int64) [sha256.Size]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, offset, size)); err != nil {
		t.Fatal(err)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// TestLayout checks the partition table of the image against the node's
// disk layout.
func TestLayout(t *testing.T) {
	img := image(t)
	f, err := os.Open(img.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	table, health, err := gpt.Read(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	if health.Primary != nil || health.Backup != nil {
		t.Errorf("partition table health: %+v", health)
	}
	want := []struct {
		name string
		typ  gpt.GUID
	}{
		{gpt.NameESP, gpt.TypeEFISystem},
		{gpt.NameMetropolisSystemA, gpt.TypeMetropolisSystemA},
		{gpt.NameMetropolisSystemB, gpt.TypeMetropolisSystemB},
		{gpt.NameMetropolisData, gpt.TypeMetropolisData},
	}
	if len(table.Partitions) != len(want) {
		t.Fatalf("got %d partitions, want %d", len(table.Partitions), len(want))
	}
	for i, w := range want {
		p := table.Partitions[i]
		if p == nil || p.Name != w.name || p.Type != w.typ {
			t.Errorf("partition %d is %+v, want %s of type %s", i+1, p, w.name, w.typ)
		}
	}
}
