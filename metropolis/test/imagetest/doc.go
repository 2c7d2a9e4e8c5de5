// Package imagetest boots the node disk image that build/mkimage writes in
// virtual machines, the way a machine's firmware would, and checks the boot
// chain end to end: OVMF loads slot A's signed UKI from the ESP, stage-1 maps
// the system partition through dm-verity with the root hash from the UKI's
// command line, and the node core prints its banner with that root hash.
//
// The tests build one image (with both slots) per test binary and share it;
// each VM boots from a copy-on-write overlay, so none changes it. They cover
// what the image must guarantee: it boots (with a TPM, as a node has one);
// one flipped byte in the system partition stops the boot with the kernel's
// verity error instead of running a modified system; slot B boots when the
// firmware is told to boot its entry next (BootNext); and building twice gives
// identical bytes.
//
// Each VM boot takes about 20-40 s under TCG on 2 cores, the image build about
// 15 s once the kernel package is cached. Set METROPOLIS_TEST_TIMEOUT_SCALE on
// loaded machines.
package imagetest
