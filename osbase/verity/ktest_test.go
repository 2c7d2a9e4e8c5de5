package verity_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"metropolis.dev/osbase/devicemapper"
	"metropolis.dev/osbase/erofs"
	"metropolis.dev/osbase/structfs"
	"metropolis.dev/osbase/test/ktest"
	"metropolis.dev/osbase/test/qemu"
	"metropolis.dev/osbase/verity"
)

// These tests check the hash trees and tables of this package against the
// kernel's dm-verity, the way the node uses them: an EROFS image followed
// by its tree on one device, mapped with the table the encoder returns. They
// run in a ktest VM, on the node's kernel, with a blank disk to write the
// image to.

// diskSerial names the VM's disk.
const diskSerial = "verity-test"

// TestKernel boots the VM that runs TestVMVerity.
func TestKernel(t *testing.T) {
	disk := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(disk, make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	ktest.Run(t, ktest.Options{
		Run:     "^TestVM",
		Modules: []string{"virtio_pci", "virtio_blk", "dm_verity", "erofs"},
		Devices: []qemu.Device{qemu.Disk{Path: disk, Serial: diskSerial}},
	})
}

// fileContent is the content of the file the tests read through dm-verity:
// three whole blocks and a tail, all different.
func fileContent() []byte {
	b := make([]byte, 3*verity.BlockSize+100)
	rand.NewChaCha8([32]byte{'k', 't', 'e', 's', 't'}).Read(b)
	return b
}

// erofsImage returns an EROFS image holding /data/file with content,
// padded to whole blocks.
func erofsImage(t *testing.T, content []byte) []byte {
	t.Helper()
	var tree structfs.Tree
	if err := tree.Place("/data/file", structfs.File(0o644, structfs.Bytes(content))); err != nil {
		t.Fatal(err)
	}
	if err := tree.Place("/hello", structfs.File(0o644, structfs.Bytes([]byte("hello\n")))); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "image.erofs"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := erofs.Write(f, &tree, erofs.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	image, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if rem := len(image) % verity.BlockSize; rem != 0 {
		image = append(image, make([]byte, verity.BlockSize-rem)...)
	}
	return image
}

// writeAt writes b to the disk at off and makes sure it reached the disk,
// which device-mapper reads rather than the disk's page cache.
func writeAt(t *testing.T, disk string, b []byte, off int64) {
	t.Helper()
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// mapVerity creates a read-only verity device called name from table,
// removed when the test ends, and returns its path.
func mapVerity(t *testing.T, name string, table *verity.MappingTable) string {
	t.Helper()
	target, err := devicemapper.ParseTarget(table.String())
	if err != nil {
		t.Fatal(err)
	}
	dev, err := devicemapper.CreateDevice(name, true, []devicemapper.Target{target})
	if err != nil {
		t.Fatalf("creating the verity device: %v", err)
	}
	t.Cleanup(func() {
		if err := devicemapper.RemoveDevice(name); err != nil {
			t.Errorf("removing the verity device: %v", err)
		}
	})
	return devicemapper.DevicePath(dev)
}

// mapAndMount creates a verity device called name from table and mounts
// its EROFS, both undone when the test ends. It returns the mount point.
func mapAndMount(t *testing.T, name string, table *verity.MappingTable) string {
	t.Helper()
	devPath := mapVerity(t, name, table)
	mnt := t.TempDir()
	if err := unix.Mount(devPath, mnt, "erofs", unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("mounting %s: %v", devPath, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Errorf("unmounting %s: %v", mnt, err)
		}
	})
	return mnt
}

// verityStatus returns the status of the verity device called name: "V"
// while all blocks read were intact, "C" once one was corrupted.
func verityStatus(t *testing.T, name string) string {
	t.Helper()
	status, err := devicemapper.TableStatus(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(status) != 1 || status[0].Type != "verity" {
		t.Fatalf("status of %s is %v, want one verity target", name, status)
	}
	return status[0].Parameters
}

// kernelLog reads the messages the kernel logs from when it is opened.
type kernelLog struct{ fd int }

func openKernelLog(t *testing.T) *kernelLog {
	t.Helper()
	// Read with unix.Read rather than an *os.File, whose reads would wait
	// for more messages rather than return EAGAIN.
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.Seek(fd, 0, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	return &kernelLog{fd: fd}
}

// messages returns the text of the messages logged since the last call.
func (l *kernelLog) messages(t *testing.T) []string {
	t.Helper()
	var msgs []string
	buf := make([]byte, 16<<10)
	for {
		n, err := unix.Read(l.fd, buf)
		if errors.Is(err, unix.EAGAIN) {
			return msgs
		}
		if err != nil {
			t.Fatalf("reading the kernel log: %v", err)
		}
		// "priority,sequence,time,flags;text\n" and maybe more lines.
		_, text, _ := strings.Cut(string(buf[:n]), ";")
		text, _, _ = strings.Cut(text, "\n")
		msgs = append(msgs, text)
	}
}

var corruptedBlock = regexp.MustCompile(`^device-mapper: verity: \d+:\d+: data block (\d+) is corrupted$`)

// TestVMVerity writes an EROFS image and its hash tree to the disk, and
// mounts it through dm-verity, first intact, then with one byte of a file
// flipped.
func TestVMVerity(t *testing.T) {
	ktest.OnlyInVM(t)
	disk := ktest.DiskBySerial(t, diskSerial)
	content := fileContent()
	image := erofsImage(t, content)

	var tree bytes.Buffer
	enc, err := verity.NewEncoder(&tree, verity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Write(image); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	// The usual layout: the tree right after the image, on one device.
	table, err := enc.MappingTable(disk, disk, enc.DataSize())
	if err != nil {
		t.Fatal(err)
	}
	writeAt(t, disk, append(bytes.Clone(image), tree.Bytes()...), 0)
	t.Logf("image of %d blocks, tree of %d, table %s", len(image)/verity.BlockSize, tree.Len()/verity.BlockSize, table)

	t.Run("intact", func(t *testing.T) {
		const name = "verity-intact"
		mnt := mapAndMount(t, name, table)
		got, err := os.ReadFile(filepath.Join(mnt, "data", "file"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, content) {
			t.Errorf("the file reads back as %d different bytes", len(got))
		}
		if got, err := os.ReadFile(filepath.Join(mnt, "hello")); err != nil || string(got) != "hello\n" {
			t.Errorf("/hello reads %q (%v)", got, err)
		}
		if s := verityStatus(t, name); s != "V" {
			t.Errorf("status %q after reading intact blocks, want V", s)
		}
	})

	t.Run("writable table refused", func(t *testing.T) {
		target, err := devicemapper.ParseTarget(table.String())
		if err != nil {
			t.Fatal(err)
		}
		_, err = devicemapper.CreateDevice("verity-writable", false, []devicemapper.Target{target})
		if err == nil || !strings.Contains(err.Error(), "verity: Device must be readonly") {
			t.Errorf("got %v, want the kernel's complaint that the device must be read-only", err)
		}
	})

	t.Run("wrong root hash", func(t *testing.T) {
		wrong := *table
		wrong.RootHash[0] ^= 1
		// The table loads: dm-verity checks blocks only when they are
		// read, and the mount reads the superblock.
		devPath := mapVerity(t, "verity-wrong-root", &wrong)
		if err := unix.Mount(devPath, t.TempDir(), "erofs", unix.MS_RDONLY, ""); err == nil {
			t.Error("mounted an image whose root hash is wrong")
		}
	})

	t.Run("corrupted", func(t *testing.T) {
		// Flip a byte in the second block of the file, found by its
		// content.
		off := bytes.Index(image, content[verity.BlockSize:verity.BlockSize+64])
		if off < 0 || off%verity.BlockSize != 0 {
			t.Fatalf("the second block of the file is at offset %d of the image, want a block boundary", off)
		}
		writeAt(t, disk, []byte{image[off+10] ^ 0x40}, int64(off+10))
		t.Cleanup(func() { writeAt(t, disk, image[off+10:off+11], int64(off+10)) })

		const name = "verity-corrupted"
		klog := openKernelLog(t)
		mnt := mapAndMount(t, name, table)
		if got, err := os.ReadFile(filepath.Join(mnt, "hello")); err != nil || string(got) != "hello\n" {
			t.Errorf("/hello, in an intact block, reads %q (%v)", got, err)
		}
		_, err := os.ReadFile(filepath.Join(mnt, "data", "file"))
		if !errors.Is(err, unix.EIO) {
			t.Errorf("reading the corrupted file: got %v, want EIO", err)
		}
		if s := verityStatus(t, name); s != "C" {
			t.Errorf("status %q after reading a corrupted block, want C", s)
		}
		msgs := klog.messages(t)
		want := strconv.Itoa(off / verity.BlockSize)
		found := false
		for _, m := range msgs {
			if sm := corruptedBlock.FindStringSubmatch(m); sm != nil {
				found = true
				if sm[1] != want {
					t.Errorf("the kernel reports %q, want data block %s", m, want)
				}
			}
		}
		if !found {
			t.Errorf("the kernel did not report data block %s as corrupted; it logged:\n%s", want, strings.Join(msgs, "\n"))
		}
	})
}

// TestVMTableMatchesKernel checks that the kernel reads the table the
// encoder returns back as the same table.
func TestVMTableMatchesKernel(t *testing.T) {
	ktest.OnlyInVM(t)
	disk := ktest.DiskBySerial(t, diskSerial)
	data := make([]byte, 130*verity.BlockSize)
	rand.NewChaCha8([32]byte{1}).Read(data)
	var tree bytes.Buffer
	enc, err := verity.NewEncoder(&tree, verity.Options{Salt: []byte("salt")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	table, err := enc.MappingTable(disk, disk, enc.DataSize())
	if err != nil {
		t.Fatal(err)
	}
	table.OptionalParameters = []string{verity.IgnoreZeroBlocks, verity.CheckAtMostOnce}
	writeAt(t, disk, append(data, tree.Bytes()...), 0)
	const name = "verity-table"
	devPath := mapVerity(t, name, table)
	// Every block reads back, through a tree of two levels.
	got, err := os.ReadFile(devPath)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("the verity device reads back %d bytes (%v), want the %d bytes of data", len(got), err, len(data))
	}

	loaded, err := devicemapper.Table(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 1 {
		t.Fatalf("the kernel has %d targets, want 1", len(loaded))
	}
	back, err := verity.ParseMappingTable(loaded[0].String())
	if err != nil {
		t.Fatalf("parsing the kernel's table %q: %v", loaded[0], err)
	}
	// The kernel names the devices by number.
	var st unix.Stat_t
	if err := unix.Stat(disk, &st); err != nil {
		t.Fatal(err)
	}
	want := *table
	want.DataDevice = fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	want.HashDevice = want.DataDevice
	if back.String() != want.String() {
		t.Errorf("the kernel has the table\n%s\nwant\n%s", back, &want)
	}
}
