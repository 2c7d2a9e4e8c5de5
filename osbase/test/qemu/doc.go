// Package qemu runs x86-64 virtual machines under qemu for tests.
//
// A VM is described by Options (memory, CPUs, name, working directory,
// extra arguments) and a list of Device values. Each device knows the qemu
// arguments it needs (Device.Args) and, optionally, how to prepare files or
// start helper processes before qemu runs (Preparer): OVMF copies its
// variable store template for each VM, Disk creates a copy-on-write qcow2
// overlay so that tests never copy or modify a whole image, and TPM starts an
// swtpm process that keeps its state in a directory, so that a VM restarted
// with the same directory finds the same TPM (a new one is manufactured with
// only the SHA-256 PCR bank, like most real TPMs). DirectBoot boots a kernel
// without firmware, the fastest way into a guest; StreamNetwork connects a
// network card to a unix socket on the host, where frames travel with the
// 4-byte length framing of ReadFrame and WriteFrame; FwCfg passes a file to
// the guest through qemu's firmware configuration device.
//
// Start launches qemu with -nodefaults, on a q35 machine, with KVM when
// /dev/kvm is usable and TCG software emulation otherwise. The guest's first
// serial port (ttyS0) is always connected to the VM's Console, which keeps a
// transcript of every line and lets a test wait for a line: Expect returns
// the first line after the previous match that contains a string, or an
// error naming the last lines printed if none arrives in time. Stop kills
// qemu and every helper process and removes the VM's temporary files; so
// does cancelling the context passed to Start, apart from removing files.
// StartT wraps Start for tests: it fails the test if the VM cannot start,
// stops the VM in the test's cleanup and logs the console transcript if the
// test failed.
//
// # Timeouts
//
// Tests pass base timeouts chosen for TCG on a small (2-core) machine, the
// slowest environment the tests run in; there a direct kernel boot takes
// about 5-10 s and an OVMF boot to the boot manager about 5 s. The
// environment variable METROPOLIS_TEST_TIMEOUT_SCALE, a positive decimal
// number (default 1), multiplies every such timeout: Expect scales the
// duration it is given, and Timeout scales any other duration a VM test
// waits for. Set it above 1 on slow or heavily loaded machines.
//
// # Host requirements
//
// Start and the devices look for their programs and firmware on the host and
// return an error naming the missing Debian package: qemu-system-x86
// (qemu-system-x86_64), qemu-utils (qemu-img, for Disk overlays), ovmf (the
// OVMF firmware files) and swtpm (for TPM).
package qemu
