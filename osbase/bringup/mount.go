package bringup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// A mount is a filesystem the program role mounts.
type mount struct {
	path   string
	fstype string
	flags  uintptr
	data   string
	// magic is the filesystem's statfs type, by which a mount that is
	// already there (moved over from an initramfs) is recognised.
	magic int64
}

// Flags for filesystems that hold no programs or devices.
const (
	noSuidDev     = unix.MS_NOSUID | unix.MS_NODEV
	noSuidDevExec = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
)

// kernelMounts are the filesystems every program role needs, parents
// before children.
var kernelMounts = []mount{
	{"/proc", "proc", noSuidDevExec, "", unix.PROC_SUPER_MAGIC},
	{"/sys", "sysfs", noSuidDevExec, "", unix.SYSFS_MAGIC},
	{"/dev", "devtmpfs", unix.MS_NOSUID | unix.MS_NOEXEC, "mode=0755", unix.TMPFS_MAGIC},
	{"/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "mode=0620,ptmxmode=0666", unix.DEVPTS_SUPER_MAGIC},
	{"/dev/shm", "tmpfs", noSuidDev, "mode=1777", unix.TMPFS_MAGIC},
	// nsdelegate makes cgroup namespaces delegation boundaries, as
	// container runtimes expect; memory_recursiveprot extends a cgroup's
	// memory protection to everything below it. The options apply to the
	// whole hierarchy, whoever mounts it.
	{"/sys/fs/cgroup", "cgroup2", noSuidDevExec, "nsdelegate,memory_recursiveprot", unix.CGROUP2_SUPER_MAGIC},
	{"/tmp", "tmpfs", noSuidDev, "mode=1777", unix.TMPFS_MAGIC},
	{"/run", "tmpfs", noSuidDev, "mode=0755", unix.TMPFS_MAGIC},
}

// efivarsMount is mounted when the kernel was booted by UEFI firmware.
// Writable, as boot entries are EFI variables; the kernel itself makes the
// variables whose corruption could brick a machine immutable.
var efivarsMount = mount{"/sys/firmware/efi/efivars", "efivarfs", noSuidDevExec, "", unix.EFIVARFS_MAGIC}

// tmpfsMount returns the mount of an empty tmpfs on path, for the caller's
// directories.
func tmpfsMount(path string) mount {
	return mount{path, "tmpfs", noSuidDev, "mode=0755", unix.TMPFS_MAGIC}
}

// apply mounts m below root (which is "/" but for tests), unless the same
// kind of filesystem is mounted there already, creating the mount point
// if needed.
func (m mount) apply(root string) error {
	path := filepath.Join(root, m.path)
	mounted, err := isMounted(path, m.magic)
	if err != nil {
		return err
	}
	if mounted {
		return nil
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return fmt.Errorf("creating mount point %s: %w", m.path, err)
	}
	if err := unix.Mount(m.fstype, path, m.fstype, m.flags, m.data); err != nil {
		return fmt.Errorf("mounting %s on %s: %w", m.fstype, m.path, err)
	}
	return nil
}

// isMounted tells whether path is the root of a mount of a filesystem
// whose type is magic. A directory inside another filesystem of the same
// type (such as /dev/shm in a devtmpfs) is not.
func isMounted(path string, magic int64) (bool, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("examining %s: %w", path, err)
	}
	if int64(fs.Type) != magic {
		return false, nil
	}
	var self, parent unix.Stat_t
	if err := unix.Stat(path, &self); err != nil {
		return false, fmt.Errorf("examining %s: %w", path, err)
	}
	if err := unix.Stat(filepath.Dir(path), &parent); err != nil {
		return false, fmt.Errorf("examining %s: %w", filepath.Dir(path), err)
	}
	return self.Dev != parent.Dev, nil
}

// mountAll mounts the kernel filesystems, efivarfs when booted by UEFI,
// and a tmpfs on each of tmpfs, below root. It returns an error for the
// first mount that fails, except that efivarfs failing is only reported
// through warn: a system runs without access to firmware variables.
func mountAll(root string, tmpfs []string, warn func(format string, args ...any)) error {
	for _, m := range kernelMounts {
		if err := m.apply(root); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(root, "/sys/firmware/efi")); err == nil {
		if err := efivarsMount.apply(root); err != nil {
			warn("EFI variables are not available: %v", err)
		}
	}
	for _, p := range tmpfs {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("tmpfs directory %q is not an absolute path", p)
		}
		if err := tmpfsMount(p).apply(root); err != nil {
			return err
		}
	}
	return nil
}

// fileLimit is the number of open files the program and its children may
// have. A node's services (etcd, container runtimes) keep many open; the
// kernel's default of 1024 is meant for interactive shells.
const fileLimit = 1 << 20

// raiseFileLimit raises RLIMIT_NOFILE to fileLimit, or to the most the
// kernel allows (fs.nr_open) if that is less, and returns the new limit.
func raiseFileLimit() (uint64, error) {
	limit := uint64(fileLimit)
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		var n uint64
		if _, err := fmt.Sscan(string(b), &n); err == nil && n < limit {
			limit = n
		}
	}
	// The syscall package rather than x/sys/unix: it tells the os
	// package, which otherwise restores the old soft limit for children.
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: limit, Max: limit}); err != nil {
		return 0, fmt.Errorf("raising RLIMIT_NOFILE to %d: %w", limit, err)
	}
	return limit, nil
}
