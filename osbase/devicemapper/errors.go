package devicemapper

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Error is a device-mapper command that the kernel refused.
type Error struct {
	// Command is the name of the ioctl, such as "DM_TABLE_LOAD".
	Command string
	// Device is the name of the device the command was for, empty for
	// commands that name none.
	Device string
	// Errno is the kernel's answer. It is mostly EINVAL, whatever was
	// wrong; KernelLog tells what.
	Errno unix.Errno
	// KernelLog holds the messages device-mapper logged while the command
	// ran, such as "device-mapper: table: 254:0: verity: Device must be
	// readonly (-EINVAL)". It is empty where /dev/kmsg cannot be read. Other
	// device-mapper commands running at the same time may add lines.
	KernelLog []string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("devicemapper: ")
	b.WriteString(e.Command)
	if e.Device != "" {
		fmt.Fprintf(&b, " of %q", e.Device)
	}
	fmt.Fprintf(&b, ": %v", e.Errno)
	if len(e.KernelLog) > 0 {
		fmt.Fprintf(&b, " (kernel log: %s)", strings.Join(e.KernelLog, "; "))
	}
	return b.String()
}

// Unwrap returns Errno, so that errors.Is(err, unix.EBUSY) works.
func (e *Error) Unwrap() error { return e.Errno }

// maxKernelMessages bounds Error.KernelLog.
const maxKernelMessages = 20

// kmsgRecordSize is enough for any record /dev/kmsg returns: a read with a
// smaller buffer than the next record fails.
const kmsgRecordSize = 16 << 10

// kernelLog reads what the kernel logs after it was opened. A nil
// *kernelLog reads nothing.
type kernelLog struct {
	fd int
}

// openKernelLog opens /dev/kmsg positioned after the last message logged
// so far, or returns nil if it cannot be read: the log only adds to error
// messages.
func openKernelLog() *kernelLog {
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	if _, err := unix.Seek(fd, 0, unix.SEEK_END); err != nil {
		unix.Close(fd)
		return nil
	}
	return &kernelLog{fd: fd}
}

func (l *kernelLog) close() {
	if l != nil {
		unix.Close(l.fd)
	}
}

// deviceMapperMessages returns the device-mapper messages logged since the
// log was opened. The kernel logs a message before the system call that
// caused it returns, so it is there to be read.
func (l *kernelLog) deviceMapperMessages() []string {
	if l == nil {
		return nil
	}
	var msgs []string
	buf := make([]byte, kmsgRecordSize)
	for len(msgs) < maxKernelMessages {
		n, err := unix.Read(l.fd, buf)
		if errors.Is(err, unix.EPIPE) || errors.Is(err, unix.EINTR) {
			// EPIPE: records were overwritten before they were read;
			// the next read returns the oldest one left.
			continue
		}
		if err != nil || n <= 0 {
			// EAGAIN: no more messages.
			break
		}
		if msg := kmsgText(buf[:n]); strings.HasPrefix(msg, "device-mapper:") {
			msgs = append(msgs, msg)
		}
	}
	return msgs
}

// kmsgText returns the text of a record read from /dev/kmsg, which has the
// form "priority,sequence,timestamp,flags;text\n", optionally followed by
// lines of key=value pairs, each starting with a space.
func kmsgText(record []byte) string {
	_, text, ok := bytes.Cut(record, []byte{';'})
	if !ok {
		return ""
	}
	text, _, _ = bytes.Cut(text, []byte{'\n'})
	return string(text)
}
