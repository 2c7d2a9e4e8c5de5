package devicemapper

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ControlPath is the device-mapper control device, which devtmpfs creates
// once the dm_mod module is loaded.
const ControlPath = "/dev/mapper/control"

// Target is one line of a device-mapper table: a range of the device's
// 512-byte sectors and the target that maps it, as in a line of `dmsetup
// table` output.
type Target struct {
	// StartSector is the first sector of the device that the target maps.
	StartSector uint64
	// Length is the number of sectors the target maps.
	Length uint64
	// Type is the target type, such as "linear" or "verity". Its kernel
	// module (dm_verity for "verity") must be loaded: the kernel cannot
	// load it on its own on a node, where it has no modprobe to call.
	Type string
	// Parameters are the target's arguments, as in a table line after the
	// type. In a table returned by TableStatus, they are the target's
	// status instead.
	Parameters string
}

// Status reply sizes: the first try has room for this much data, each
// retry twice as much, up to maxReplySpace.
const (
	initialReplySpace = 16 << 10
	maxReplySpace     = 16 << 20
)

// CreateDevice creates a device-mapper device called name with a table of
// the given targets, and activates it. A read-only device refuses writes;
// some targets, such as verity, accept only read-only tables. It returns
// the device's number (see DevicePath). If any step fails, it removes the
// device again, so that a name is never left taken by a device without a
// table.
func CreateDevice(name string, readOnly bool, targets []Target) (dev uint64, err error) {
	if err := checkName(name); err != nil {
		return 0, fmt.Errorf("devicemapper: creating device: %w", err)
	}
	if len(targets) == 0 {
		return 0, fmt.Errorf("devicemapper: creating device %q: no targets", name)
	}
	data, err := marshalTargets(targets)
	if err != nil {
		return 0, fmt.Errorf("devicemapper: creating device %q: %w", name, err)
	}
	var flags uint32
	if readOnly {
		flags = flagReadOnly
	}

	c, err := openControl()
	if err != nil {
		return 0, err
	}
	defer c.close()
	if _, _, err := c.run(cmdDevCreate, request{name: name}, 0); err != nil {
		return 0, err
	}
	defer func() {
		if err == nil {
			return
		}
		if _, _, rerr := c.run(cmdDevRemove, request{name: name}, 0); rerr != nil {
			err = errors.Join(err, fmt.Errorf("removing the incomplete device again: %w", rerr))
		}
	}()
	load := request{name: name, flags: flags, targetCount: uint32(len(targets)), data: data}
	if _, _, err := c.run(cmdTableLoad, load, 0); err != nil {
		return 0, err
	}
	// Resuming a device that has a table loaded but not active makes that
	// table active.
	_, h, err := c.run(cmdDevSuspend, request{name: name}, 0)
	if err != nil {
		return 0, err
	}
	return h.dev, nil
}

// RemoveDevice removes the device-mapper device called name. It fails with
// an error matching unix.EBUSY while the device is open, for example
// mounted, and with unix.ENXIO if there is no such device.
func RemoveDevice(name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("devicemapper: removing device: %w", err)
	}
	c, err := openControl()
	if err != nil {
		return err
	}
	defer c.close()
	_, _, err = c.run(cmdDevRemove, request{name: name}, 0)
	return err
}

// DevicePath returns the path of the block device with number dev, as
// CreateDevice returns it, where devtmpfs puts it: the kernel names every
// device-mapper device dm-N after its minor number.
func DevicePath(dev uint64) string {
	return fmt.Sprintf("/dev/dm-%d", unix.Minor(dev))
}

// Version returns the version of the kernel's device-mapper ioctl
// interface: major, minor and patch level.
func Version() ([3]uint32, error) {
	c, err := openControl()
	if err != nil {
		return [3]uint32{}, err
	}
	defer c.close()
	_, h, err := c.run(cmdVersion, request{}, 0)
	if err != nil {
		return [3]uint32{}, err
	}
	return h.version, nil
}

// Table returns the active table of the device called name, as the kernel
// reports it: the target's parameters may differ in form from those the
// table was loaded with, with devices given by number for example.
func Table(name string) ([]Target, error) {
	return tableStatus(name, flagStatusTable)
}

// TableStatus returns the targets of the active table of the device called
// name, each with its status in place of its parameters, as `dmsetup
// status` shows them. The status of a verity target, for example, is "V"
// while every block read was verified and "C" once one was found corrupted.
func TableStatus(name string) ([]Target, error) {
	return tableStatus(name, 0)
}

func tableStatus(name string, flags uint32) ([]Target, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("devicemapper: reading table: %w", err)
	}
	c, err := openControl()
	if err != nil {
		return nil, err
	}
	defer c.close()
	reply, h, err := c.run(cmdTableStatus, request{name: name, flags: flags}, initialReplySpace)
	if err != nil {
		return nil, err
	}
	targets, err := parseTargets(reply, h)
	if err != nil {
		return nil, fmt.Errorf("devicemapper: %s of %q: %w", cmdTableStatus.name, name, err)
	}
	return targets, nil
}

// control is an open control device.
type control struct {
	fd int
}

func openControl() (*control, error) {
	fd, err := unix.Open(ControlPath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("devicemapper: opening %s (is the dm_mod module loaded and devtmpfs mounted?): %w", ControlPath, err)
		}
		return nil, fmt.Errorf("devicemapper: opening %s: %w", ControlPath, err)
	}
	return &control{fd: fd}, nil
}

func (c *control) close() {
	unix.Close(c.fd)
}

// run sends a command and returns the reply and its struct dm_ioctl. A
// reply that needs more than replySpace bytes of data is asked for again
// with more room, as the kernel cuts it short instead of failing.
func (c *control) run(cmd command, req request, replySpace int) ([]byte, header, error) {
	klog := openKernelLog()
	defer klog.close()
	for {
		buf := req.buffer(replySpace)
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(c.fd), uintptr(cmd.number()), uintptr(unsafe.Pointer(&buf[0])))
		if errno != 0 {
			return nil, header{}, &Error{Command: cmd.name, Device: req.name, Errno: errno, KernelLog: klog.deviceMapperMessages()}
		}
		h := parseHeader(buf)
		if h.flags&flagBufferFull == 0 {
			return buf, h, nil
		}
		if replySpace >= maxReplySpace {
			return nil, header{}, fmt.Errorf("devicemapper: %s of %q: the reply does not fit %d bytes", cmd.name, req.name, replySpace)
		}
		replySpace = max(2*replySpace, initialReplySpace)
	}
}

// LoadTable loads a table of the given targets into the inactive slot of
// the existing device called name. The device keeps working with its
// active table until ResumeDevice swaps the new one in, which is how a
// device is changed in place, for example grown after its underlying
// partition was.
func LoadTable(name string, readOnly bool, targets []Target) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("devicemapper: loading table: %w", err)
	}
	if len(targets) == 0 {
		return fmt.Errorf("devicemapper: loading table of %q: no targets", name)
	}
	data, err := marshalTargets(targets)
	if err != nil {
		return fmt.Errorf("devicemapper: loading table of %q: %w", name, err)
	}
	var flags uint32
	if readOnly {
		flags = flagReadOnly
	}
	c, err := openControl()
	if err != nil {
		return err
	}
	defer c.close()
	_, _, err = c.run(cmdTableLoad, request{name: name, flags: flags, targetCount: uint32(len(targets)), data: data}, 0)
	return err
}

// SuspendDevice suspends the device called name: it finishes the I/O in
// flight, flushes what its targets buffer (dm-integrity's journal, for
// example) and holds new I/O until ResumeDevice.
func SuspendDevice(name string) error {
	return suspendOrResume(name, flagSuspend)
}

// ResumeDevice resumes the device called name, making a table loaded with
// LoadTable active first if there is one.
func ResumeDevice(name string) error {
	return suspendOrResume(name, 0)
}

func suspendOrResume(name string, flags uint32) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("devicemapper: suspending or resuming device: %w", err)
	}
	c, err := openControl()
	if err != nil {
		return err
	}
	defer c.close()
	_, _, err = c.run(cmdDevSuspend, request{name: name, flags: flags}, 0)
	return err
}
