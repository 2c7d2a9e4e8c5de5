package bringup

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// inMountNamespace runs fn on a thread of its own in a new, private mount
// namespace, which ends with the thread, mounts and all. The thread gets a
// cgroup namespace of its own too: mounting cgroup2 in the initial one
// would apply the mount's options to the host's cgroup hierarchy.
func inMountNamespace(t *testing.T, fn func() error) error {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread exits with the goroutine, and its
		// mount namespace with it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			errc <- fmt.Errorf("making mounts private: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// mountsBelow returns the mount points below root with their filesystem
// types, as the calling thread sees them.
func mountsBelow(root string) (map[string][]string, error) {
	f, err := os.Open("/proc/thread-self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	mounts := map[string][]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		// ID parent major:minor root mountpoint options... - fstype ...
		fields := strings.Fields(s.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 5 || sep < 0 || sep+1 >= len(fields) {
			return nil, fmt.Errorf("malformed mountinfo line %q", s.Text())
		}
		if rel, ok := strings.CutPrefix(fields[4], root); ok {
			mounts[rel] = append(mounts[rel], fields[sep+1])
		}
	}
	return mounts, s.Err()
}

func TestMountAll(t *testing.T) {
	root := t.TempDir()
	var warnings []string
	warn := func(format string, args ...any) { warnings = append(warnings, fmt.Sprintf(format, args...)) }
	err := inMountNamespace(t, func() error {
		if err := mountAll(root, []string{"/ephemeral"}, warn); err != nil {
			return err
		}
		// A second bring-up, as after stage-1 moved some mounts in,
		// mounts nothing twice.
		if err := mountAll(root, []string{"/ephemeral"}, warn); err != nil {
			return fmt.Errorf("second run: %w", err)
		}
		got, err := mountsBelow(root)
		if err != nil {
			return err
		}
		want := map[string]string{
			"/proc": "proc", "/sys": "sysfs", "/dev": "devtmpfs", "/dev/pts": "devpts",
			"/dev/shm": "tmpfs", "/sys/fs/cgroup": "cgroup2", "/tmp": "tmpfs", "/run": "tmpfs",
			"/ephemeral": "tmpfs",
		}
		if _, err := os.Stat(filepath.Join(root, "/sys/firmware/efi")); err == nil && len(warnings) == 0 {
			want["/sys/firmware/efi/efivars"] = "efivarfs"
		}
		for p, fstype := range want {
			if len(got[p]) != 1 || got[p][0] != fstype {
				return fmt.Errorf("%s: mounted %v, want one %s", p, got[p], fstype)
			}
		}
		for p := range got {
			if _, ok := want[p]; !ok {
				return fmt.Errorf("unexpected mount of %v on %s", got[p], p)
			}
		}
		var fs syscall.Statfs_t
		if err := syscall.Statfs(filepath.Join(root, "/tmp"), &fs); err != nil {
			return err
		}
		if fs.Flags&unix.ST_NOSUID == 0 || fs.Flags&unix.ST_NODEV == 0 {
			return fmt.Errorf("/tmp mounted with flags %#x, want nosuid and nodev", fs.Flags)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestMountAllRejectsRelativeTmpfs(t *testing.T) {
	root := t.TempDir()
	err := inMountNamespace(t, func() error {
		return mountAll(root, []string{"ephemeral"}, t.Logf)
	})
	if err == nil || !strings.Contains(err.Error(), "not an absolute path") {
		t.Errorf("got %v, want an error about the relative path", err)
	}
}
