// Package blockdev wraps the Linux block device ioctls a node uses on its
// disks: the size of a device, discarding and zeroing ranges of it, and
// telling the kernel that a partition table changed.
//
// A node changes its partition table once, when it grows its data
// partition to fill a disk larger than the image written to it, while
// other partitions of the same disk are in use: the EFI system partition is
// mounted and the system partition is mapped by dm-verity. The kernel then
// refuses to re-read the whole table (BLKRRPART fails with EBUSY), so
// ResizePartition tells it about the one partition that changed (BLKPG),
// which it allows as long as that partition itself is not in use.
//
// Every function takes an open *os.File of a block device; none keeps state.
package blockdev

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Size returns the size of the block device in bytes.
func Size(f *os.File) (int64, error) {
	var size uint64
	if err := ioctlPtr(f, unix.BLKGETSIZE64, unsafe.Pointer(&size)); err != nil {
		return 0, fmt.Errorf("blockdev: size of %s: %w", f.Name(), err)
	}
	if size > 1<<63-1 {
		return 0, fmt.Errorf("blockdev: size of %s: %d bytes is out of range", f.Name(), size)
	}
	return int64(size), nil
}

// LogicalBlockSize returns the smallest unit the device can address, in
// bytes: 512 or 4096 on common disks.
func LogicalBlockSize(f *os.File) (int, error) {
	n, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
	if err != nil {
		return 0, fmt.Errorf("blockdev: logical block size of %s: %w", f.Name(), err)
	}
	return n, nil
}

// Discard tells the device that the length bytes at offset are unused, so
// that an SSD can reclaim them. What they read as afterwards depends on the
// device. Both values must be multiples of the logical block size. It fails
// with an error matching unix.EOPNOTSUPP if the device does not support
// discards.
func Discard(f *os.File, offset, length int64) error {
	if err := rangeIoctl(f, unix.BLKDISCARD, offset, length); err != nil {
		return fmt.Errorf("blockdev: discarding %d bytes at %d of %s: %w", length, offset, f.Name(), err)
	}
	return nil
}

// Zero makes the length bytes at offset read as zeros, with the device's
// fastest means (a write-zeroes command where it has one, otherwise by
// writing zeros), and drops them from the page cache. Both values must be
// multiples of the logical block size.
func Zero(f *os.File, offset, length int64) error {
	if err := rangeIoctl(f, unix.BLKZEROOUT, offset, length); err != nil {
		return fmt.Errorf("blockdev: zeroing %d bytes at %d of %s: %w", length, offset, f.Name(), err)
	}
	return nil
}

// rangeIoctl issues an ioctl that takes a byte range, as two uint64s.
func rangeIoctl(f *os.File, req uint, offset, length int64) error {
	if offset < 0 || length < 0 {
		return errors.New("negative offset or length")
	}
	r := [2]uint64{uint64(offset), uint64(length)}
	return ioctlPtr(f, req, unsafe.Pointer(&r))
}

// ResizePartition tells the kernel that partition number n (as Linux
// numbers them, from 1) of the disk f now covers length bytes from start,
// after the partition table on the disk was changed to say so. The start
// cannot change. The partition must not be in use, but the disk's other
// partitions may be.
func ResizePartition(disk *os.File, n int, start, length int64) error {
	p := unix.BlkpgPartition{Start: start, Length: length, Pno: int32(n)}
	arg := unix.BlkpgIoctlArg{
		Op:      unix.BLKPG_RESIZE_PARTITION,
		Datalen: int32(unsafe.Sizeof(p)),
		Data:    (*byte)(unsafe.Pointer(&p)),
	}
	if err := ioctlPtr(disk, unix.BLKPG, unsafe.Pointer(&arg)); err != nil {
		return fmt.Errorf("blockdev: resizing partition %d of %s to %d bytes at %d: %w", n, disk.Name(), length, start, err)
	}
	return nil
}

// RereadPartitions makes the kernel read the disk's partition table again
// and replace all of its partitions with what it finds. It fails with an
// error matching unix.EBUSY while any partition of the disk is in use.
func RereadPartitions(disk *os.File) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, disk.Fd(), unix.BLKRRPART, 0)
	runtime.KeepAlive(disk)
	if errno != 0 {
		return fmt.Errorf("blockdev: re-reading the partition table of %s: %w", disk.Name(), errno)
	}
	return nil
}

// ioctlPtr issues an ioctl whose argument is a pointer.
func ioctlPtr(f *os.File, req uint, arg unsafe.Pointer) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), uintptr(req), uintptr(arg))
	runtime.KeepAlive(f)
	if errno != 0 {
		return errno
	}
	return nil
}
