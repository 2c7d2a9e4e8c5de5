// Command core is the node core, /init of the node's system image, started by
// the stage-1 init once it has mounted the system through dm-verity.
//
// For now it only reports what the boot established and stays up: it prints
// the version banner and a summary of the slot booted, the root hash stage-1
// verified the system against (as stage-1 passed them in the environment),
// whether the firmware enforced Secure Boot (the SecureBoot EFI variable)
// and whether the node has a TPM. It then waits forever, reaping any orphaned
// process that ends, as PID 1 must. It will grow into the node's supervision
// tree.
//
// Nothing it prints is taken on trust from a source stage-1 did not check:
// the slot and root hash are those of the verity device the system runs from,
// and the Secure Boot state comes from the firmware.
package main
