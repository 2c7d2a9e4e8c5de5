// Package devicemapper creates and removes Linux device-mapper devices with
// the kernel's ioctl interface on /dev/mapper/control.
//
// A node maps its system partition through a dm-verity target before it
// mounts it, in the stage-1 init, which has no dmsetup, no libdevmapper and
// no udev: only a Go program, devtmpfs and the kernel. Its data partition
// it maps through dm-crypt, and for authenticated encryption dm-integrity
// below that, with no cryptsetup either. This package speaks the kernel's
// interface (version 4 of struct dm_ioctl, declared in
// include/uapi/linux/dm-ioctl.h) directly, and does nothing else: it never
// creates device nodes (devtmpfs does), never waits for udev, and keeps no
// state between calls.
//
// Besides the generic calls (CreateDevice, LoadTable, SuspendDevice,
// ResumeDevice, RemoveDevice, Table, TableStatus), it builds the tables of
// the targets whose parameters are easy to get wrong: CryptTarget and
// IntegrityTarget. IntegrityDataSectors asks the kernel how much data a
// dm-integrity device provides, which only its superblock knows, and makes
// the kernel format a new one.
//
// # Keys
//
// A dm-crypt table names its key, and the kernel returns tables as they
// were loaded (DM_TABLE_STATUS), so a key in a table is a key in every log
// line that prints the table. CreateCryptDevice never puts it there: it
// hands the key to the kernel's key retention service as a logon key,
// which user space cannot read back, in the keyring of a thread that lives
// for the one call, and the table refers to it by description. The Key
// type formats as a placeholder, so that printing a CryptTarget does not
// print its key either.
//
// # The interface
//
// Every command is an ioctl on the control device that takes one buffer: a
// fixed 312-byte struct dm_ioctl, naming the device and carrying flags,
// followed by command-specific data. DM_TABLE_LOAD sends the targets of a
// table as a list of struct dm_target_spec, each followed by its parameter
// string, the list linked by byte offsets that must keep every spec 8-byte
// aligned. DM_TABLE_STATUS returns such a list, linked differently (offsets
// from the first spec rather than from the previous one), and sets a flag
// instead of failing when the buffer is too small, in which case the
// command is repeated with a larger one. marshal.go holds this layout; it
// is tested against golden bytes on any machine, while the ioctls themselves
// need a kernel with device-mapper and root, and are tested in a VM (see
// ktest_test.go and metropolis.dev/osbase/test/ktest).
//
// Every request carries the interface version this package was written
// against (4.0.0): the kernel refuses a request whose major version differs
// from its own or whose minor version is newer, and writes its own version
// back into every reply (see Version).
//
// # Errors
//
// The kernel answers a bad request with an errno alone, mostly EINVAL, and
// explains the actual problem only in its log, for example "verity: Device
// must be readonly" for a verity table loaded writable. Since a node that
// cannot map its system partition has nothing but its console to say why,
// a failed command's *Error carries the device-mapper lines the kernel
// logged while the command ran, read from /dev/kmsg where that is possible.
//
// # Device numbers
//
// Devices are identified to the kernel by name. CreateDevice returns the
// new device's number as a dev_t that golang.org/x/sys/unix.Major and
// unix.Minor decode; the kernel names a device-mapper block device dm-N
// after its minor number, so that with devtmpfs mounted it appears as
// DevicePath returns.
package devicemapper
