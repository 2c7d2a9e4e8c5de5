package devmgr

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// receiveBuffer is the socket's receive buffer. Replaying every device at
// start announces hundreds of them in a burst, and an overflowing socket
// loses events.
const receiveBuffer = 16 << 20

// errOverflow is returned by receive when the kernel dropped events
// because the socket's buffer was full.
var errOverflow = errors.New("uevent socket overflowed: the kernel dropped events")

// A ueventSocket receives the kernel's uevents.
type ueventSocket struct {
	f *os.File
}

// listen opens a kobject uevent netlink socket subscribed to the kernel's
// multicast group, in the network namespace of the calling thread.
func listen() (*ueventSocket, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return nil, fmt.Errorf("opening uevent socket: %w", err)
	}
	// SO_RCVBUFFORCE goes beyond net.core.rmem_max, which we are allowed
	// to as root; plain SO_RCVBUF is the fallback.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, receiveBuffer); err != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, receiveBuffer); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("sizing uevent socket buffer: %w", err)
		}
	}
	// Group 1 carries the kernel's events; udev multicasts its own on
	// group 2, which is of no interest.
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("subscribing to uevents: %w", err)
	}
	// A non-blocking descriptor in an os.File waits in Go's poller, so
	// that a deadline can interrupt receive.
	return &ueventSocket{f: os.NewFile(uintptr(fd), "uevent")}, nil
}

// receive reads one message into buf and returns its length. Messages
// from senders other than the kernel and truncated messages are skipped.
// It returns os.ErrDeadlineExceeded once interrupt was called, and
// errOverflow if events were lost.
func (s *ueventSocket) receive(buf []byte) (int, error) {
	rc, err := s.f.SyscallConn()
	if err != nil {
		return 0, err
	}
	for {
		var n, flags int
		var from unix.Sockaddr
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, _, flags, from, rerr = unix.Recvmsg(int(fd), buf, nil, 0)
			return !errors.Is(rerr, unix.EAGAIN)
		})
		switch {
		case err != nil:
			return 0, err
		case errors.Is(rerr, unix.ENOBUFS):
			return 0, errOverflow
		case errors.Is(rerr, unix.EINTR):
			continue
		case rerr != nil:
			return 0, fmt.Errorf("receiving uevent: %w", rerr)
		case flags&unix.MSG_TRUNC != 0:
			continue
		}
		// Only the kernel sends from port ID 0; anyone else would be a
		// process impersonating it.
		if nl, ok := from.(*unix.SockaddrNetlink); !ok || nl.Pid != 0 {
			continue
		}
		return n, nil
	}
}

// interrupt makes a pending and every later receive return.
func (s *ueventSocket) interrupt() {
	s.f.SetReadDeadline(time.Unix(1, 0))
}

func (s *ueventSocket) close() error {
	return s.f.Close()
}
