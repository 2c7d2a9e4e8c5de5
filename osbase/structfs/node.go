package structfs

import (
	"fmt"
	"io/fs"
	"strings"
)

// Type is the kind of a Node.
type Type int

const (
	// TypeDir is a directory.
	TypeDir Type = iota
	// TypeFile is a regular file with a Blob as content.
	TypeFile
	// TypeSymlink is a symbolic link.
	TypeSymlink
	// TypeCharDevice is a character device node.
	TypeCharDevice
	// TypeBlockDevice is a block device node.
	TypeBlockDevice
)

func (t Type) String() string {
	switch t {
	case TypeDir:
		return "directory"
	case TypeFile:
		return "regular file"
	case TypeSymlink:
		return "symbolic link"
	case TypeCharDevice:
		return "character device"
	case TypeBlockDevice:
		return "block device"
	}
	return fmt.Sprintf("Type(%d)", int(t))
}

// PermMask are the mode bits a Node may carry: permissions plus setuid,
// setgid and sticky. The file type is Node.Type, not part of Mode.
const PermMask = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// Linux limits for device numbers: a dev_t has 12 bits of major and 20 bits
// of minor number, which is also what the 32-bit encoding on disk holds.
const (
	MaxMajor = 1<<12 - 1
	MaxMinor = 1<<20 - 1
)

// Node is one filesystem object without its name. Which fields matter
// depends on Type; the constructors below fill in the right ones.
type Node struct {
	Type Type
	// Mode holds only bits of PermMask. Symbolic links always have 0777.
	Mode fs.FileMode
	UID  uint32
	GID  uint32
	// Blob is the content of a TypeFile node.
	Blob Blob
	// Target is where a TypeSymlink node points to, as stored verbatim.
	Target string
	// Major and Minor are the device number of a device node.
	Major uint32
	Minor uint32
}

// Dir returns a directory node owned by root.
func Dir(mode fs.FileMode) Node {
	return Node{Type: TypeDir, Mode: mode}
}

// File returns a regular file node owned by root.
func File(mode fs.FileMode, b Blob) Node {
	return Node{Type: TypeFile, Mode: mode, Blob: b}
}

// Symlink returns a symbolic link to target, owned by root.
func Symlink(target string) Node {
	return Node{Type: TypeSymlink, Mode: 0o777, Target: target}
}

// CharDevice returns a character device node owned by root.
func CharDevice(mode fs.FileMode, major, minor uint32) Node {
	return Node{Type: TypeCharDevice, Mode: mode, Major: major, Minor: minor}
}

// BlockDevice returns a block device node owned by root.
func BlockDevice(mode fs.FileMode, major, minor uint32) Node {
	return Node{Type: TypeBlockDevice, Mode: mode, Major: major, Minor: minor}
}

// validate reports why n cannot be stored in an image, or nil.
func (n Node) validate() error {
	if n.Mode&^PermMask != 0 {
		return fmt.Errorf("mode %v has bits outside permissions, setuid, setgid and sticky (use fs.ModeSetuid, fs.ModeSetgid, fs.ModeSticky, not 04000, 02000, 01000)", n.Mode)
	}
	switch n.Type {
	case TypeDir:
	case TypeFile:
		if n.Blob == nil {
			return fmt.Errorf("regular file without content (nil Blob)")
		}
		if n.Blob.Size() < 0 {
			return fmt.Errorf("regular file with negative size %d", n.Blob.Size())
		}
	case TypeSymlink:
		if n.Mode != 0o777 {
			return fmt.Errorf("symbolic link with mode %v, want 0777", n.Mode)
		}
		if n.Target == "" || strings.IndexByte(n.Target, 0) >= 0 {
			return fmt.Errorf("symbolic link target %q is empty or contains NUL", n.Target)
		}
	case TypeCharDevice, TypeBlockDevice:
		if n.Major > MaxMajor || n.Minor > MaxMinor {
			return fmt.Errorf("device number %d:%d beyond Linux limits %d:%d", n.Major, n.Minor, MaxMajor, MaxMinor)
		}
	default:
		return fmt.Errorf("unknown node type %v", n.Type)
	}
	return nil
}

// Unix file type bits of st_mode, the same on every Linux architecture.
const (
	unixTypeDir     = 0o040000
	unixTypeFile    = 0o100000
	unixTypeSymlink = 0o120000
	unixTypeChar    = 0o020000
	unixTypeBlock   = 0o060000
)

// UnixMode returns n's type and mode as the st_mode bits of Linux, which is
// what image formats store.
func (n Node) UnixMode() uint32 {
	m := uint32(n.Mode.Perm())
	if n.Mode&fs.ModeSetuid != 0 {
		m |= 0o4000
	}
	if n.Mode&fs.ModeSetgid != 0 {
		m |= 0o2000
	}
	if n.Mode&fs.ModeSticky != 0 {
		m |= 0o1000
	}
	switch n.Type {
	case TypeDir:
		m |= unixTypeDir
	case TypeFile:
		m |= unixTypeFile
	case TypeSymlink:
		m |= unixTypeSymlink
	case TypeCharDevice:
		m |= unixTypeChar
	case TypeBlockDevice:
		m |= unixTypeBlock
	}
	return m
}
