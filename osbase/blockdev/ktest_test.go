package blockdev_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"metropolis.dev/osbase/blockdev"
	"metropolis.dev/osbase/gpt"
	"metropolis.dev/osbase/test/ktest"
	"metropolis.dev/osbase/test/qemu"
)

const (
	diskSerial = "blockdev-test"
	diskSize   = 64 << 20
	// tableSize is the disk the partition table was made for, smaller
	// than the disk, as when an image is written to a larger disk.
	tableSize = 32 << 20
)

// TestKernel boots the VM that runs the TestVM tests, with a disk that
// holds a partition table made for a smaller disk: one 8 MiB partition and
// one that fills the rest of those 32 MiB.
func TestKernel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(diskSize); err != nil {
		t.Fatal(err)
	}
	tbl := &gpt.Table{DiskGUID: gpt.DerivedGUID("blockdev", "disk"), DiskSize: tableSize}
	for _, p := range []struct {
		name string
		size int64
	}{{"first", 8 << 20}, {"last", -1}} {
		part := &gpt.Partition{Type: gpt.TypeMetropolisData, ID: gpt.DerivedGUID("blockdev", p.name), Name: p.name}
		if err := tbl.AddPartition(part, p.size, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := tbl.Write(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	ktest.Run(t, ktest.Options{
		Run:     "^TestVM",
		Modules: []string{"virtio_pci", "virtio_blk"},
		Devices: []qemu.Device{qemu.Disk{Path: path, Serial: diskSerial}},
	})
}

func open(t *testing.T, path string, flag int) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// sysfsSectors returns the size of a block device as sysfs shows it, in
// 512-byte sectors.
func sysfsSectors(t *testing.T, name string) int64 {
	t.Helper()
	b, err := os.ReadFile("/sys/class/block/" + name + "/size")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestVMSize(t *testing.T) {
	ktest.OnlyInVM(t)
	f := open(t, ktest.DiskBySerial(t, diskSerial), os.O_RDONLY)
	if size, err := blockdev.Size(f); err != nil || size != diskSize {
		t.Errorf("Size = %d, %v; want %d", size, err, diskSize)
	}
	if bs, err := blockdev.LogicalBlockSize(f); err != nil || bs != 512 {
		t.Errorf("LogicalBlockSize = %d, %v; want 512", bs, err)
	}
	notDev := open(t, "/proc/self/status", os.O_RDONLY)
	if _, err := blockdev.Size(notDev); !errors.Is(err, unix.ENOTTY) {
		t.Errorf("Size of a regular file: got %v, want ENOTTY", err)
	}
}

func TestVMZeroAndDiscard(t *testing.T) {
	ktest.OnlyInVM(t)
	disk := ktest.DiskBySerial(t, diskSerial)
	part := open(t, disk+"1", os.O_RDWR)
	junk := bytes.Repeat([]byte{0xa5}, 1<<20)
	if _, err := part.WriteAt(junk, 0); err != nil {
		t.Fatal(err)
	}
	if err := part.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := blockdev.Zero(part, 4096, 8192); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 16384)
	if _, err := part.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	want := append(append(bytes.Repeat([]byte{0xa5}, 4096), make([]byte, 8192)...), bytes.Repeat([]byte{0xa5}, 4096)...)
	if !bytes.Equal(got, want) {
		t.Error("Zero did not zero exactly the range asked for")
	}
	if err := blockdev.Zero(part, 100, 512); !errors.Is(err, unix.EINVAL) {
		t.Errorf("Zero of an unaligned range: got %v, want EINVAL", err)
	}
	// qemu's virtio disk accepts discards whether or not its image
	// file frees the space.
	if err := blockdev.Discard(part, 0, 1<<20); err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("Discard: %v", err)
	}
}

// TestVMGrowLastPartition grows the last partition to the end of the disk,
// in the table and in the kernel, while the other partition is open.
func TestVMGrowLastPartition(t *testing.T) {
	ktest.OnlyInVM(t)
	diskPath := ktest.DiskBySerial(t, diskSerial)
	name := filepath.Base(diskPath)
	disk := open(t, diskPath, os.O_RDWR)
	before := sysfsSectors(t, name+"2")

	tbl, health, err := gpt.Read(disk, diskSize)
	if err != nil {
		t.Fatal(err)
	}
	if health.Backup == nil {
		t.Error("gpt.Read did not notice that the backup table is not at the end of the disk")
	}
	grown, err := tbl.GrowPartition(2, 0)
	if err != nil || !grown {
		t.Fatalf("GrowPartition = %v, %v", grown, err)
	}
	if err := tbl.Write(disk); err != nil {
		t.Fatal(err)
	}
	if err := disk.Sync(); err != nil {
		t.Fatal(err)
	}

	// The first partition is in use, so the whole table cannot be read
	// again.
	inUse := open(t, diskPath+"1", os.O_RDONLY|unix.O_EXCL)
	if err := blockdev.RereadPartitions(disk); !errors.Is(err, unix.EBUSY) {
		t.Errorf("RereadPartitions with a partition in use: got %v, want EBUSY", err)
	}
	p := tbl.Partitions[1]
	start, length := int64(p.FirstLBA)*512, int64(p.LastLBA-p.FirstLBA+1)*512
	if err := blockdev.ResizePartition(disk, 2, start, length); err != nil {
		t.Fatal(err)
	}
	if after := sysfsSectors(t, name+"2"); after != length/512 || after <= before {
		t.Errorf("partition 2 has %d sectors after growing, had %d; want %d", after, before, length/512)
	}
	grownPart := open(t, diskPath+"2", os.O_RDONLY)
	if size, err := blockdev.Size(grownPart); err != nil || size != length {
		t.Errorf("Size of the grown partition = %d, %v; want %d", size, err, length)
	}
	grownPart.Close()
	// The start of a partition cannot move.
	if err := blockdev.ResizePartition(disk, 2, start+512*2048, length-512*2048); err == nil {
		t.Error("ResizePartition moved the start of a partition")
	}

	inUse.Close()
	if err := blockdev.RereadPartitions(disk); err != nil {
		t.Errorf("RereadPartitions with no partition in use: %v", err)
	}
	if after := sysfsSectors(t, name+"2"); after != length/512 {
		t.Errorf("partition 2 has %d sectors after reading the table again, want %d", after, length/512)
	}
	again, health, err := gpt.Read(disk, diskSize)
	if err != nil || health.Primary != nil || health.Backup != nil {
		t.Fatalf("reading the grown table: %v, %+v", err, health)
	}
	if again.Partitions[1].LastLBA != p.LastLBA {
		t.Errorf("partition 2 ends at block %d on the disk, want %d", again.Partitions[1].LastLBA, p.LastLBA)
	}
}
