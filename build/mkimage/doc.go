// Command mkimage builds the node's disk image: everything a machine needs to
// boot Metropolis from its first disk, with UEFI firmware and nothing else.
//
// Usage:
//
//	go run ./build/mkimage -out out/node.img [-slot-b] [-key KEY.pem -cert CERT.pem] [-summary FILE.json]
//	    [-parameters PARAMS.pb] [-cmdline "PARAM=VALUE ..."]
//
// The image is a GPT disk (see osbase/gpt for the names and type GUIDs):
//
//	1 ESP                    FAT32: \EFI\BOOT\BOOTX64.EFI (slot A's UKI),
//	                         \EFI\metropolis\boot-a.efi, and boot-b.efi with -slot-b,
//	                         and metropolis\parameters.pb with -parameters
//	2 METROPOLIS-SYSTEM-A    EROFS system image followed by its dm-verity hash tree
//	3 METROPOLIS-SYSTEM-B    the same as A with -slot-b, else empty
//	4 METROPOLIS-NODE-DATA   empty, for the node to format
//
// The steps: build the stage-1 init and the node core as static Go binaries
// stamped with the version from git (build/version); take the kernel and the
// modules stage-1 loads from the pinned Debian package (build/kernel); pack
// stage-1 and the modules into a zstd initramfs (osbase/cpio); write the system
// image (osbase/erofs) with the core as /init (the node's only program of its
// own: it is PID 1 too, see osbase/bringup for why), the Debian programs the
// node runs, mkfs.xfs as /bin/mkfs.xfs (pinned in third_party/xfsprogs) with
// exactly the shared libraries it loads at Debian's paths (build/elfdeps), and
// its hash tree (osbase/verity); then, per slot, a unified kernel image
// (build/uki) whose command line names the slot and carries that slot's
// verity table, signed for Secure Boot (build/secureboot) with the key given
// or else the machine's development key.
//
// -parameters and -cmdline make images for tests and for machines set up
// without an installer: the node's parameters (NodeParameters, which the node
// checks at boot) tell it at its first boot whether to bootstrap a cluster or
// join one, and -cmdline adds parameters such as metropolis.dns_check to the
// signed command line of every slot.
//
// Slot B is the same system in its own partition, booted by its own UKI whose
// table names METROPOLIS-SYSTEM-B. How a node chooses between the slots
// (boot entries and BootNext) is explained in osbase/efivarfs; the image holds
// no boot entries, since those live in the firmware, so a fresh machine boots
// the removable-media path \EFI\BOOT\BOOTX64.EFI, slot A.
//
// # Reproducibility
//
// The same commit built twice gives the same bytes: the Go binaries are built
// with -trimpath, without VCS stamping and with fixed linker flags; every
// writer is given fixed times (the epoch); GUIDs and the FAT volume ID derive
// from the version; the verity salt derives from the system image
// (verity.DeriveSalt); signatures carry no time (build/secureboot); and the
// image file is written sparse, so unwritten space reads as zeros however the
// file came to be. The tests build twice and compare.
package main
