package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// earlyMounts are the kernel filesystems stage-1 needs, and moves on to the
// system root.
var earlyMounts = []struct {
	path, fstype string
	flags        uintptr
}{
	{"/dev", "devtmpfs", unix.MS_NOSUID | unix.MS_NOEXEC},
	{"/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
	{"/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
}

// mountEarly mounts devtmpfs, proc and sysfs in the initramfs.
func mountEarly() error {
	for _, m := range earlyMounts {
		if err := os.MkdirAll(m.path, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", m.path, err)
		}
		if err := unix.Mount(m.fstype, m.path, m.fstype, m.flags, ""); err != nil {
			return fmt.Errorf("mounting %s on %s: %w", m.fstype, m.path, err)
		}
	}
	return nil
}

// switchRoot makes root, a mounted filesystem, the root of the system. It
// moves the early mounts into root, frees
// the memory of the initramfs by deleting its files (nothing else would:
// the initramfs is a RAM filesystem that stays mounted underneath), moves
// root onto / and changes the process's root to it. The kernel's
// pivot_root cannot be used: the initramfs root cannot be unmounted.
func switchRoot(root string) error {
	for _, m := range earlyMounts {
		if err := unix.Mount(m.path, filepath.Join(root, m.path), "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("moving %s into the system root: %w", m.path, err)
		}
	}
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("entering %s: %w", root, err)
	}
	if err := deleteInitramfs(); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("moving the system root onto /: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("changing root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("entering the new root: %w", err)
	}
	return nil
}

// deleteInitramfs removes every file of the initramfs, the filesystem of
// /, without descending into other filesystems mounted on it (the system
// root among them).
func deleteInitramfs() error {
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		return fmt.Errorf("examining the initramfs: %w", err)
	}
	var root unix.Statfs_t
	if err := unix.Statfs("/", &root); err != nil {
		return fmt.Errorf("examining the initramfs: %w", err)
	}
	// Deleting / recursively is only safe on the RAM filesystem the
	// kernel unpacked the initramfs into.
	if root.Type != unix.RAMFS_MAGIC && root.Type != unix.TMPFS_MAGIC {
		return fmt.Errorf("/ is not an initramfs (filesystem type %#x)", root.Type)
	}
	return deleteBelow("/", st.Dev)
}

// deleteBelow removes the contents of directory dir that are on the
// device dev.
func deleteBelow(dir string, dev uint64) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("deleting initramfs: %w", err)
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("deleting initramfs: %w", err)
		}
		if st.Dev != dev {
			continue
		}
		if e.IsDir() {
			if err := deleteBelow(p, dev); err != nil {
				return err
			}
			// Mount points keep their (empty) directory.
			if err := unix.Rmdir(p); err != nil && !errors.Is(err, unix.EBUSY) {
				return fmt.Errorf("deleting initramfs: %w", err)
			}
			continue
		}
		if err := unix.Unlink(p); err != nil {
			return fmt.Errorf("deleting initramfs: %w", err)
		}
	}
	return nil
}
