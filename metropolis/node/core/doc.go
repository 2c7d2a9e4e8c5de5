// Command core is the node core, /init of the node's system image, started by
// the stage-1 init once it has mounted the system through dm-verity.
//
// It is a supervision tree brought up by osbase/bringup, which also explains
// why the core runs as two processes: PID 1, which only reaps processes and
// reboots the node when the core ends, and the core proper, its child.
//
// The root runnable first logs the version banner and what the boot
// established (the slot and root hash stage-1 verified, as stage-1 passed
// them in the environment; whether the firmware enforced Secure Boot; whether
// the node has a TPM), then starts the node's services in the order their
// inputs become available:
//
//  1. devmgr, which loads the drivers of the node's hardware and the modules
//     the kernel asks for by name. Everything after waits until it has
//     handled every device present at boot.
//  2. localstorage finds the node's disk and mounts its EFI system partition;
//     the node's parameters are read from qemu's fw_cfg or that partition
//     (nodeparams). Their absence is not an error: only a node setting up its
//     data partition needs them.
//  3. network (DHCP, or the static configuration from the parameters, which
//     is kept on the ESP for later boots), time (NTP), storage (a new data
//     partition on the first boot, protected as the parameters' cluster
//     configuration asks; the existing one, unsealed with the TPM, after)
//     and status, which logs a one-line summary of the node's state whenever
//     it changes, the time it took to get an address and mount its storage,
//     and the memory the core and PID 1 use.
//
// The kernel command line may name a host name for the node to resolve
// through its own resolver once it has an address (metropolis.dns_check),
// as a check of its DNS path.
//
// Nothing it prints is taken on trust from a source stage-1 did not check:
// the slot and root hash are those of the verity device the system runs from,
// and the Secure Boot state comes from the firmware.
package main
