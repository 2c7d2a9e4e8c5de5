package localstorage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"

	"metropolis.dev/metropolis/node/core/localstorage/crypt"
	cpb "metropolis.dev/metropolis/proto/common"
	"metropolis.dev/osbase/fat32"
	"metropolis.dev/osbase/gpt"
	"metropolis.dev/osbase/structfs"
	"metropolis.dev/osbase/supervisor"
	"metropolis.dev/osbase/test/ktest"
	"metropolis.dev/osbase/test/qemu"
	"metropolis.dev/osbase/tpm"
)

// The VM tests below run on a disk laid out like a node's, whose partition
// table was made for a smaller disk, as when a node image is written to a
// larger disk: the data partition is too small for XFS until it grows.
const (
	espSize    = 64 << 20
	systemSize = 4 << 20
	// tableDiskSize is the disk the partition table was made for, diskSize
	// the disk the VM has.
	tableDiskSize = 360 << 20
	diskSize      = 400 << 20
)

// TestKernel boots the VM that runs the TestVM tests, with the node's
// kernel modules for its storage, the system image's mkfs.xfs and a TPM.
func TestKernel(t *testing.T) {
	disk := filepath.Join(t.TempDir(), "disk.img")
	writeNodeDisk(t, disk)
	ktest.Run(t, ktest.Options{
		Run: "^TestVM",
		Modules: []string{
			"virtio_pci", "virtio_blk",
			"vfat", "nls_ascii", "nls_cp437",
			"dm_mod", "dm_crypt", "dm_integrity", "aesni_intel",
			"crc32c_generic", "xfs",
		},
		Programs: []ktest.Program{{PinFile: "third_party/xfsprogs/pins.txt", Source: "sbin/mkfs.xfs", Path: mkfsXFS}},
		Devices: []qemu.Device{
			qemu.Disk{Path: disk},
			qemu.TPM{},
		},
		// qemu's direct boot loads the initramfs over the ACPI tables
		// when a TPM makes them larger, which hides the TPM from the
		// kernel: it probes for it at the standard address instead.
		Cmdline: "tpm_tis.force=1 tpm_tis.interrupts=0",
		Timeout: 4 * time.Minute,
	})
}

// writeNodeDisk writes a sparse disk image with a node's partitions: an
// empty FAT32 ESP, small system partitions and a data partition filling the
// rest of tableDiskSize.
func writeNodeDisk(t *testing.T, path string) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(diskSize); err != nil {
		t.Fatal(err)
	}
	tbl := &gpt.Table{DiskGUID: gpt.RandomGUID(), DiskSize: tableDiskSize}
	var parts []*gpt.Partition
	for _, p := range []struct {
		typ  gpt.GUID
		name string
		size int64
	}{
		{gpt.TypeEFISystem, gpt.NameESP, espSize},
		{gpt.TypeMetropolisSystemA, gpt.NameMetropolisSystemA, systemSize},
		{gpt.TypeMetropolisSystemB, gpt.NameMetropolisSystemB, systemSize},
		{gpt.TypeMetropolisData, gpt.NameMetropolisData, -1},
	} {
		part := &gpt.Partition{Type: p.typ, ID: gpt.RandomGUID(), Name: p.name}
		if err := tbl.AddPartition(part, p.size, 0); err != nil {
			t.Fatal(err)
		}
		parts = append(parts, part)
	}
	if err := tbl.Write(f); err != nil {
		t.Fatal(err)
	}
	esp := parts[0]
	opts := fat32.Options{Label: "METROPOLIS", BlockCount: int64(esp.LastLBA - esp.FirstLBA + 1)}
	if err := fat32.WriteFS(io.NewOffsetWriter(f, int64(esp.FirstLBA)*512), &structfs.Tree{}, opts); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// inRunnable runs fn in a runnable of a supervision tree, as the node runs
// its storage, and returns its error.
func inRunnable(t *testing.T, fn func(ctx context.Context) error) error {
	t.Helper()
	result := make(chan error, 1)
	supervisor.TestHarness(t, func(ctx context.Context) error {
		result <- fn(ctx)
		supervisor.Signal(ctx, supervisor.SignalDone)
		return nil
	})
	return <-result
}

// partitionSum returns the CRC-32 of a partition, to tell whether it
// changed: it is computed with PCLMULQDQ, which qemu emulates quickly,
// while SHA-256 takes several seconds per partition under emulation and
// guards against nothing more here.
func partitionSum(t *testing.T, path string) uint32 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := crc32.NewIEEE()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return h.Sum32()
}

// partitionBytes returns the size of a partition as the kernel sees it.
func partitionBytes(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/class/block", filepath.Base(path), "size"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n * 512
}

// checkGrown checks that the data partition grew to the end of the disk,
// in the kernel and in a healthy partition table.
func checkGrown(t *testing.T, diskPath, dataPath string, before int64) {
	t.Helper()
	after := partitionBytes(t, dataPath)
	if grown := after - before; grown < diskSize-tableDiskSize-(1<<20) {
		t.Errorf("the data partition has %d bytes after MountNew, %d before; want it grown by about %d", after, before, diskSize-tableDiskSize)
	}
	f, err := os.Open(diskPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tbl, health, err := gpt.Read(f, diskSize)
	if err != nil || health.Primary != nil || health.Backup != nil {
		t.Fatalf("the partition table after growing: %v, %+v", err, health)
	}
	if p := tbl.Partitions[3]; int64(p.LastLBA-p.FirstLBA+1)*512 != after {
		t.Errorf("the table says the data partition has %d bytes, the kernel %d", int64(p.LastLBA-p.FirstLBA+1)*512, after)
	}
}

// TestVMStorage runs a node's storage through its first boot and later
// boots in each mode, on one disk and its ESP.
func TestVMStorage(t *testing.T) {
	ktest.OnlyInVM(t)
	tp, err := tpm.Open(tpm.DefaultPath)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()

	r, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := inRunnable(t, r.Start); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Unmount(); err != nil {
			t.Errorf("Unmount: %v", err)
		}
	})
	dataPath := r.disk.data.path
	before := partitionBytes(t, dataPath)

	for i, tc := range []struct {
		security cpb.NodeStorageSecurity
		tpm      *tpm.TPM
	}{
		// The first MountNew grows the partition: before, it is too small
		// for XFS.
		{cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_AUTHENTICATED_ENCRYPTED, tp},
		{cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INSECURE, nil},
		// Last, so that the ESP holds a configuration sealed by the TPM
		// for the test after the loop.
		{cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_ENCRYPTED, tp},
	} {
		t.Run(tc.security.String(), func(t *testing.T) {
			start := time.Now()
			var cuk []byte
			err := inRunnable(t, func(ctx context.Context) error {
				var err error
				cuk, err = r.Data.MountNew(ctx, tc.security, tc.tpm)
				return err
			})
			if err != nil {
				t.Fatalf("MountNew: %v", err)
			}
			t.Logf("MountNew took %v", time.Since(start).Round(time.Millisecond))
			if i == 0 {
				checkGrown(t, r.disk.path, dataPath, before)
			}
			if tc.security == cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_INSECURE {
				if cuk != nil {
					t.Errorf("MountNew returned a cluster unlock key for INSECURE")
				}
			} else if len(cuk) != crypt.KeySize {
				t.Fatalf("MountNew returned a %d-byte cluster unlock key", len(cuk))
			}
			content := []byte("written in mode " + tc.security.String())
			if err := r.Data.Node.Roles.Write(content, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := r.Data.Unmount(); err != nil {
				t.Fatal(err)
			}

			// The next boot: unseal, get the CUK back (the cluster
			// would hand it over), mount.
			sealed := &r.ESP.Metropolis.SealedConfiguration
			if tc.tpm != nil {
				if _, err := sealed.Unseal(nil); err == nil {
					t.Error("the sealed configuration reads without the TPM")
				}
			}
			sc, err := sealed.Unseal(tc.tpm)
			if err != nil {
				t.Fatalf("Unseal: %v", err)
			}
			if sc.StorageSecurity != tc.security {
				t.Errorf("sealed storage security is %v, want %v", sc.StorageSecurity, tc.security)
			}
			if err := inRunnable(t, func(ctx context.Context) error { return r.Data.MountExisting(ctx, sc, cuk) }); err != nil {
				t.Fatalf("MountExisting: %v", err)
			}
			if got, err := r.Data.Node.Roles.Read(); err != nil || !bytes.Equal(got, content) {
				t.Errorf("after MountExisting the file holds %q, %v; want %q", got, err, content)
			}
			if err := r.Data.Unmount(); err != nil {
				t.Fatal(err)
			}

			// A wrong key fails before anything is written.
			sum := partitionSum(t, dataPath)
			var wrong []byte
			var wantErr error
			if cuk != nil {
				wrong = bytes.Clone(cuk)
				wrong[0] ^= 1
				wantErr = crypt.ErrWrongKey
			} else {
				// An unencrypted partition has no key to get wrong;
				// one given is refused.
				wrong = make([]byte, crypt.KeySize)
			}
			err = inRunnable(t, func(ctx context.Context) error { return r.Data.MountExisting(ctx, sc, wrong) })
			if err == nil || (wantErr != nil && !errors.Is(err, wantErr)) {
				t.Errorf("MountExisting with a wrong key: got %v, want %v", err, wantErr)
			}
			t.Logf("MountExisting with a wrong key: %v", err)
			if partitionSum(t, dataPath) != sum {
				t.Error("MountExisting with a wrong key changed the data partition")
			}
		})
	}

	// Once the Secure Boot state changes (PCR 7), the configuration
	// sealed by the TPM does not unseal: the node cannot unlock its data.
	t.Run("PCR 7 changed", func(t *testing.T) {
		extendPCR7(t)
		_, err := r.ESP.Metropolis.SealedConfiguration.Unseal(tp)
		if !errors.Is(err, tpm.ErrPolicyMismatch) {
			t.Errorf("Unseal after PCR 7 changed: got %v, want tpm.ErrPolicyMismatch", err)
		}
		t.Log(err)
	})
}

// extendPCR7 extends PCR 7, as firmware does when the Secure Boot
// configuration differs.
func extendPCR7(t *testing.T) {
	t.Helper()
	dev, err := linuxtpm.Open(tpm.DefaultPath)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	digest := sha256.Sum256([]byte("another Secure Boot configuration"))
	_, err = tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(7), Auth: tpm2.PasswordAuth(nil)},
		Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: digest[:]}}},
	}.Execute(dev)
	if err != nil {
		t.Fatalf("extending PCR 7: %v", err)
	}
}
