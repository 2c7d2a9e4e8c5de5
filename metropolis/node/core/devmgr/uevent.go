package devmgr

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// maxEventSize bounds a uevent message. The kernel builds them in a 2 KiB
// buffer (UEVENT_BUFFER_SIZE); anything much larger did not come from it.
const maxEventSize = 8 << 10

// An Event is a kernel uevent: something happened to a kernel object
// (usually a device), as the kernel announces it on the kobject uevent
// netlink socket.
type Event struct {
	// Action is what happened: add, remove, change, move, bind, unbind,
	// online or offline.
	Action string
	// DevPath is the object's path in sysfs, below /sys, such as
	// /devices/pci0000:00/0000:00:02.0/virtio0.
	DevPath string
	// Vars are the event's variables (ACTION, DEVPATH, SUBSYSTEM,
	// SEQNUM, MODALIAS, DEVNAME, INTERFACE...), each key once.
	Vars map[string]string
}

// Get returns the value of the variable key, or "" if the event has none.
func (e *Event) Get(key string) string {
	return e.Vars[key]
}

// String describes the event for logs: the action and the object.
func (e *Event) String() string {
	return e.Action + " " + e.DevPath
}

// ParseEvent parses a uevent message as the kernel sends it:
//
//	ACTION@DEVPATH\0KEY=VALUE\0KEY=VALUE\0...
//
// It checks what the kernel guarantees, so that a message from anywhere
// else is rejected rather than half understood: the header's action and
// path match the ACTION and DEVPATH variables, the path is absolute,
// every variable has a non-empty key of letters, digits and
// underscores (the kernel's are capitals), and no key appears twice. Messages of udev's own format
// (starting with "libudev") are rejected with a distinct error.
func ParseEvent(b []byte) (*Event, error) {
	if len(b) > maxEventSize {
		return nil, fmt.Errorf("uevent of %d bytes, more than the %d the kernel sends", len(b), maxEventSize)
	}
	if bytes.HasPrefix(b, []byte("libudev\x00")) {
		return nil, errUdevMessage
	}
	// The kernel ends every field with a NUL, the last one included.
	b = bytes.TrimSuffix(b, []byte{0})
	fields := strings.Split(string(b), "\x00")
	header := fields[0]
	action, devpath, ok := strings.Cut(header, "@")
	if !ok || action == "" {
		return nil, fmt.Errorf("uevent header %q is not ACTION@DEVPATH", header)
	}
	if !strings.HasPrefix(devpath, "/") {
		return nil, fmt.Errorf("uevent header %q: path is not absolute", header)
	}
	e := &Event{Action: action, DevPath: devpath, Vars: make(map[string]string, len(fields)-1)}
	for i, f := range fields[1:] {
		key, value, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("uevent %s: field %d (%q) is not KEY=VALUE", header, i+1, f)
		}
		if !validKey(key) {
			return nil, fmt.Errorf("uevent %s: field %d has an invalid key %q", header, i+1, key)
		}
		if _, dup := e.Vars[key]; dup {
			return nil, fmt.Errorf("uevent %s: key %s appears twice", header, key)
		}
		e.Vars[key] = value
	}
	if a, ok := e.Vars["ACTION"]; !ok || a != action {
		return nil, fmt.Errorf("uevent %s: ACTION is %q, not the header's %q", header, a, action)
	}
	if p, ok := e.Vars["DEVPATH"]; !ok || p != devpath {
		return nil, fmt.Errorf("uevent %s: DEVPATH is %q, not the header's %q", header, p, devpath)
	}
	if s, ok := e.Vars["SEQNUM"]; ok {
		if _, err := strconv.ParseUint(s, 10, 64); err != nil {
			return nil, fmt.Errorf("uevent %s: SEQNUM %q is not a number", header, s)
		}
	}
	return e, nil
}

// errUdevMessage is the error for messages udev multicasts to its
// listeners, which the device manager does not use.
var errUdevMessage = errors.New("uevent is a udev message, not one from the kernel")

// validKey tells whether key could be a uevent variable's name.
func validKey(key string) bool {
	if key == "" {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}
