// Command stage1 is the init of the node's initramfs: the first program the
// kernel runs, and the one that decides which system the node boots. It mounts
// the system partition of the node's A/B slot through dm-verity and hands over
// to the node core, /init of that system.
//
// # Boot chain
//
// The firmware loads the slot's unified kernel image (UKI) from the EFI system
// partition, verifies its Secure Boot signature and measures it. The UKI holds
// the kernel, this initramfs and the kernel command line, so all three are
// covered by the signature. The command line names the slot
// (metropolis.slot=A or B, different in each slot's UKI) and carries the
// dm-verity table of that slot's system image, root hash included, in the
// kernel's dm-mod.create syntax (see build/uki.AppendVerityRoot):
//
//	metropolis.slot=A dm-mod.create="rootfs,,,ro,0 <sectors> verity 1 PARTLABEL=METROPOLIS-SYSTEM-A ..."
//
// The Debian kernel builds device-mapper as a module and so ignores
// dm-mod.create; stage-1 implements it:
//
//  1. mount devtmpfs, proc and sysfs;
//  2. parse the command line strictly (osbase/bootparam,
//     verity.ParseMappingTable): one read-only device named rootfs, one
//     verity target, data and hashes both on the system partition of the
//     slot the command line names;
//  3. load the modules for the virtio disk, dm-verity, EROFS and, when
//     booted by UEFI, efivarfs from /lib/modules in the initramfs
//     (osbase/kmod);
//  4. wait, with a deadline, for the partition whose GPT name is
//     METROPOLIS-SYSTEM-<slot> (PARTNAME in sysfs), refusing two of them;
//  5. create the verity device, read-only, with the table from the command
//     line pointed at that partition, and mount it as EROFS, read-only;
//  6. move the kernel filesystems into it, delete the initramfs files,
//     make it the root (MS_MOVE onto /, then chroot, since the initramfs
//     cannot be unmounted for pivot_root) and start its /init as stage-1's
//     only child, telling it through the environment (METROPOLIS_STAGE1_*)
//     what was verified. Stage-1 stays PID 1 (osbase/pid1): it reaps
//     orphans and reboots, or powers off, when the core exits. Executing
//     the core in its place would make the core play PID 1 too and run its
//     package initialisers twice before the node could start.
//
// The system partition is only ever reached through the verity device,
// whose root hash comes from the signed command line, so no byte of it is
// used unverified.
//
// # Failures
//
// Any error stops the boot: stage-1 prints "stage1: <what went wrong>" on the
// console and halts the machine, leaving the message on the screen. It has no
// fallback (such as booting without verity or from another partition), since
// every fallback would be a way around the verification.
//
// A corrupted block is found later, when it is read, by the kernel. The image
// builder sets panic_on_corruption in the table: the kernel prints
// "device-mapper: verity: ...: data block N is corrupted" and panics. The
// default, failing the read with EIO, would let the node run on with parts of
// its system unreadable: a corrupted block in the core would kill it with
// SIGBUS, whose message points nowhere near verity, and a corrupted
// configuration file would look to the code reading it like a missing one,
// a path an attacker could pick on purpose. restart_on_corruption would say the
// same as a panic but reboot right away, into the same slot and the same
// failure, with the message scrolled away. A panic stops the node with the
// verity error as the last thing on the console; the A/B fallback after a
// failed update does not depend on it (see osbase/efivarfs).
package main
