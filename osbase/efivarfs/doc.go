// Package efivarfs reads and writes UEFI variables through Linux's efivarfs,
// and encodes the boot entries (EFI_LOAD_OPTION) that select what the firmware
// boots.
//
// The kernel shows each variable as a file NAME-VENDORGUID in
// /sys/firmware/efi/efivars (mounted by whoever needs it; the filesystem is a
// module in many kernels), holding the variable's 32-bit attributes followed
// by its value. A write replaces the variable with the value written in a
// single write call. Only variables the kernel knows to be safe to change,
// such as Boot#### and BootNext, are writable without first removing the
// immutable flag, which this package does not do.
//
// # Choosing a slot of an A/B system
//
// An A/B system keeps two copies of its boot image, one per slot, and must
// make the firmware boot the right one. This package supports doing it with
// the firmware's own boot manager, which every UEFI implementation has:
//
//   - each slot has a boot entry (Boot####, see LoadOption) pointing at its
//     own image on the EFI system partition, for example
//     HD(ESP)/\EFI\metropolis\boot-b.efi;
//   - BootOrder lists the slot in use first: it is what the machine boots
//     until told otherwise;
//   - an update writes the other slot and sets BootNext to its entry. The
//     firmware boots BootNext once and deletes it, so if the new slot fails to
//     come up, the next reset boots the old slot again from BootOrder. Only
//     once the new slot runs well does it move itself to the front of
//     BootOrder.
//
// The alternatives cost more trusted code for the same result: a boot loader
// of our own in front of the kernel images (it must be signed, parse state
// from the ESP and chain-load), or systemd-boot with boot counting (the same,
// plus a boot menu and file renames on FAT for every attempt). BootNext is
// a one-shot trial boot with automatic fallback that the firmware already
// implements. Its weakness is firmware that loses or ignores boot entries;
// the removable-media path \EFI\BOOT\BOOTX64.EFI, which firmware boots
// without any entry, then holds the image of the slot last known to work.
package efivarfs
