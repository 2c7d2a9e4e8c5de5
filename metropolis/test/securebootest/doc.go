// Package securebootest checks that Secure Boot protects a Metropolis node's
// boot image: with the project's key enrolled in the firmware and Secure
// Boot on, a unified kernel image (UKI) signed with that key boots, and one
// that is unsigned, signed with another key or modified after signing is
// refused by the firmware before any of it runs.
//
// The tests build the pieces with the same code the image build uses: the
// UKI from the pinned systemd stub and Debian kernel (build/uki), signed by
// build/secureboot with a fresh development key, on a disk with a GPT and a
// FAT32 EFI system partition (osbase/gpt, osbase/fat32), and boot it in
// qemu with OVMF, whose variable store has the key enrolled by
// osbase/efi/ovmfvars. The UKI has no initramfs: the kernel panics for want
// of a root filesystem, which is all a test needs to see that the firmware
// started it. Checking the firmware's decisions needs a real firmware, so
// these are VM tests and take a minute or two under software emulation.
package securebootest
