// Package uki assembles unified kernel images (UKIs): one UEFI executable
// holding everything that boots a Metropolis node up to its root
// filesystem, so that a single Secure Boot signature covers all of it.
//
// A UKI is systemd's UEFI stub (Debian's systemd-boot-efi, systemd 252) with
// the kernel, the initramfs, the kernel command line and the os-release file
// added as PE sections. At boot the stub finds the sections in its own
// loaded image, measures them into the TPM (PCR 11) and hands the kernel the
// command line and initramfs through the EFI handover protocol. When the
// UKI has a .cmdline section, the stub ignores the command line of the boot
// entry under Secure Boot, so the command line is as trustworthy as the
// signature; it carries the dm-verity root hash (see AppendVerityRoot),
// which extends that trust to the whole root filesystem.
//
// Build adds the sections in pure Go (package pefile) rather than with
// objcopy: the layout is then fixed by this code instead of by the version
// of binutils, and building twice gives the same bytes. It checks the
// inputs the stub would only reject at boot, with a message on the screen
// of a machine nobody watches: the kernel must support the handover
// protocol, and the command line must be one the kernel receives
// unchanged.
package uki
