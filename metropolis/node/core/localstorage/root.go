package localstorage

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"metropolis.dev/metropolis/node/core/localstorage/declarative"
	"metropolis.dev/osbase/supervisor"
)

// Start finds the node's disk, mounts its EFI system partition and creates
// the directories of ESP.Metropolis and Ephemeral. Ephemeral, Tmp and Run
// are memory that PID 1 mounted before anything ran (osbase/bringup). The
// data partition is mounted afterwards, with MountNew or MountExisting, as
// which applies depends on what the ESP holds. ctx is that of the runnable
// starting the node, for logging.
func (r *Root) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.disk != nil {
		return errors.New("localstorage: already started")
	}
	log := supervisor.Logger(ctx)
	espID, err := loaderESPID()
	if err != nil {
		log.Warningf("Ignoring the ESP the firmware names: %v", err)
	}
	disk, err := findNodeDisk(sysBlockDir, devDir, espID)
	if err != nil {
		return fmt.Errorf("localstorage: finding the node's disk: %w", err)
	}
	log.Infof("The node's disk is %s: ESP %s, data %s", disk.path, disk.esp.path, disk.data.path)

	// Synchronous: the ESP changes rarely, and a node losing power right
	// after writing its sealed configuration must find it on the disk.
	if err := r.mount(disk.esp.path, r.ESP.FullPath(), "vfat", unix.MS_NOEXEC|unix.MS_NODEV|unix.MS_NOSUID|unix.MS_SYNCHRONOUS, ""); err != nil {
		return errors.Join(err, r.unmountAll())
	}
	// A fresh image has no metropolis directory on its ESP yet.
	if err := r.ESP.Metropolis.MkdirAll(0o755); err != nil {
		return errors.Join(fmt.Errorf("localstorage: %w", err), r.unmountAll())
	}
	if err := declarative.MkdirAll(&r.Ephemeral, 0o700); err != nil {
		return errors.Join(fmt.Errorf("localstorage: %w", err), r.unmountAll())
	}
	r.disk = disk
	return nil
}

// mount mounts a filesystem on target, creating target first, and
// remembers it for unmountAll.
func (r *Root) mount(source, target, fstype string, flags uintptr, data string) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("localstorage: %w", err)
	}
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return fmt.Errorf("localstorage: mounting %s (%s) on %s: %w", source, fstype, target, err)
	}
	r.mounted = append(r.mounted, target)
	return nil
}

// unmountAll unmounts what Start mounted, in reverse order.
func (r *Root) unmountAll() error {
	var errs []error
	for i := len(r.mounted) - 1; i >= 0; i-- {
		if err := unix.Unmount(r.mounted[i], 0); err != nil {
			errs = append(errs, fmt.Errorf("localstorage: unmounting %s: %w", r.mounted[i], err))
			continue
		}
		r.mounted = r.mounted[:i]
	}
	return errors.Join(errs...)
}

// Unmount unmounts the data partition, if mounted, and what Start mounted,
// flushing everything to the disk, as before a reboot.
func (r *Root) Unmount() error {
	dataErr := r.Data.Unmount()
	r.mu.Lock()
	defer r.mu.Unlock()
	return errors.Join(dataErr, r.unmountAll())
}
