package main

import (
	"encoding/hex"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"metropolis.dev/osbase/devicemapper"
	"metropolis.dev/osbase/kmod"
	"metropolis.dev/osbase/pid1"
)

// modules are loaded in this order, each after its dependencies: the
// virtio disk, device-mapper's verity target and EROFS. crc32c comes first
// because EROFS needs libcrc32c, whose soft dependency on a crc32c
// implementation nothing else would load: the kernel has no modprobe to
// call.
var modules = []string{"crc32c", "virtio_pci", "virtio_blk", "dm_verity", "erofs"}

// efiModules are loaded only when the kernel was booted by UEFI firmware,
// as they refuse to load otherwise: efivarfs, for the node core to read
// the Secure Boot state.
var efiModules = []string{"efivarfs"}

// partitionTimeout is how long stage-1 waits for the system partition
// once the disk drivers are loaded.
const partitionTimeout = 30 * time.Second

// newRoot is where the system partition is mounted before it becomes the
// root.
const newRoot = "/newroot"

// nextInit is the program stage-1 hands over to, in the system image.
const nextInit = "/init"

// Environment variables through which stage-1 tells the node core what it
// verified: the slot, the root hash and the partition it mapped.
const (
	envSlot     = "METROPOLIS_STAGE1_SLOT"
	envRootHash = "METROPOLIS_STAGE1_ROOT_HASH"
	envDevice   = "METROPOLIS_STAGE1_DEVICE"
)

func main() {
	halt(run())
}

// run boots the system: it returns only on failure, as on success it stays
// PID 1 for the life of the system, with the node core as its only child.
func run() error {
	if err := mountEarly(); err != nil {
		return err
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return fmt.Errorf("reading kernel command line: %w", err)
	}
	cfg, err := parseBootConfig(string(cmdline))
	if err != nil {
		return err
	}
	rootHash := hex.EncodeToString(cfg.Table.RootHash[:])
	fmt.Printf("stage1: booting slot %s, system root hash %s\n", cfg.Slot, rootHash)

	km, err := kmod.NewManager()
	if err != nil {
		return fmt.Errorf("loading kernel modules: %w", err)
	}
	load := modules
	if _, err := os.Stat("/sys/firmware/efi"); err == nil {
		load = append(load, efiModules...)
	}
	for _, m := range load {
		if err := km.Load(m); err != nil {
			return fmt.Errorf("loading kernel module %s: %w", m, err)
		}
	}

	part, err := waitForPartition("/sys", cfg.PartitionName, partitionTimeout, 20*time.Millisecond)
	if err != nil {
		return err
	}
	target, err := verityTarget(cfg.Table, part.Dev)
	if err != nil {
		return err
	}
	dev, err := devicemapper.CreateDevice(verityDeviceName, true, []devicemapper.Target{target})
	if err != nil {
		return fmt.Errorf("setting up dm-verity on %s (%s): %w", part.Name, cfg.PartitionName, err)
	}
	dmPath := devicemapper.DevicePath(dev)

	if err := os.Mkdir(newRoot, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", newRoot, err)
	}
	if err := unix.Mount(dmPath, newRoot, "erofs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("mounting the verified system %s (%s on %s) as erofs: %w", dmPath, cfg.PartitionName, part.Name, err)
	}
	if err := unix.Access(newRoot+nextInit, unix.X_OK); err != nil {
		return fmt.Errorf("system image has no executable %s: %w", nextInit, err)
	}
	env := []string{
		envSlot + "=" + cfg.Slot,
		envRootHash + "=" + rootHash,
		envDevice + "=" + part.Name,
	}
	if err := switchRoot(newRoot); err != nil {
		return err
	}
	fmt.Printf("stage1: %s verified by dm-verity on %s, starting %s\n", cfg.PartitionName, dmPath, nextInit)
	// Stage-1 stays PID 1 rather than executing the core in its place:
	// the core would then run its package initialisers twice, once as
	// PID 1 and once as its own child (see osbase/bringup).
	pid1.Run(nextInit, []string{nextInit}, env)
	return nil
}

// halt prints why the boot stopped and halts the machine, leaving the
// message on the console. It never returns: stage-1 is PID 1, and its exit
// would panic the kernel with a message that hides the reason.
func halt(err error) {
	fmt.Fprintf(os.Stderr, "stage1: %v\nstage1: boot stopped; the system was not started\n", err)
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_HALT); err != nil {
		fmt.Fprintf(os.Stderr, "stage1: halting: %v\n", err)
	}
	for {
		time.Sleep(time.Hour)
	}
}
