// Package localstorage is the node's storage: its directory tree, the disk
// it boots from, and the data partition, which it creates on the node's
// first boot and unlocks on every boot after.
//
// # The tree
//
// Root describes every directory and file the node uses as typed structs
// (see the declarative package), placed at / on a node and at a temporary
// directory in tests: ESP (the EFI system partition), Data (the data
// partition), and Ephemeral, Tmp and Run (memory). Code reaches a file
// through its field, root.ESP.Metropolis.SealedConfiguration, and asks it
// for FullPath; no code joins paths by hand.
//
// # The disk
//
// Start finds the node's disk: the one whose GPT has an EFI system
// partition and a Metropolis data partition, found by their type GUIDs (see
// metropolis.dev/osbase/gpt), and, if the UEFI stub said which ESP it was
// loaded from (LoaderDevicePartUUID), the one holding that ESP. A second
// disk that looks like a node disk is an error, not a guess. The
// partitions are used through the kernel's own device nodes (devtmpfs): the
// kernel names them, and sysfs maps partition numbers to those names, so
// there is nothing to gain from making nodes of our own. Start then mounts
// the ESP. Ephemeral, Tmp and Run are memory (tmpfs) that PID 1 mounts
// before any service starts (see metropolis.dev/osbase/bringup).
//
// # The data partition
//
// On the node's first boot, DataDirectory.MountNew grows the data
// partition into the space after it (to the end of the disk, when the node
// image was written to a larger disk: the partition table is rewritten with
// its backup at the new end, and the kernel told with BLKPG, as the disk's
// other partitions are in use), sets it up in the mode the cluster asks
// for (INSECURE, ENCRYPTED or AUTHENTICATED_ENCRYPTED; see the crypt
// package for the ciphers and the on-disk layout), makes an XFS filesystem
// on it with the system image's mkfs.xfs, run as a supervised command, and
// mounts it. On later boots DataDirectory.MountExisting sets it up with the
// same key and mounts it; a wrong key is reported before the partition is
// touched.
//
// XFS, not ext4: the node limits the size of each local volume of its
// workloads with project quotas on the volume's directory, which XFS
// enforces from a mount option on any filesystem, while ext4 needs the
// feature chosen at mkfs time and its own tooling to manage; XFS allocates
// inodes as it needs them, so mkfs writes little and leaves nothing to
// initialize in the background (ext4's lazy inode table initialization
// would write most of the partition again after an AUTHENTICATED_ENCRYPTED
// partition was written once to initialize its tags); and it supports
// reflinks (containerd's copy-on-write snapshots) and growing online.
// mkfs.xfs makes no filesystem smaller than 300 MiB, so neither does
// MountNew.
//
// # Keys
//
// The data key is the XOR of two random 32-byte halves: the node unlock
// key (NUK), kept in the sealed configuration on the ESP (SealedConfiguration,
// sealed by the TPM to PCR 7 when the node uses its TPM, plain otherwise),
// and the cluster unlock key (CUK), which MountNew returns. Neither half
// alone unlocks the partition: a stolen disk is useless without the
// cluster, and a node whose Secure Boot state changed cannot unseal its
// NUK (the error says so, and the data partition is not touched). The node
// hands the CUK to its cluster when it registers, and gets it back when it
// rejoins (package cluster); it never keeps it.
package localstorage
