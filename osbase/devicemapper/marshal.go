package devicemapper

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// The layout of struct dm_ioctl and struct dm_target_spec, from
// include/uapi/linux/dm-ioctl.h. Both are in the CPU's byte order.
const (
	// headerSize is sizeof(struct dm_ioctl), including the 7 bytes of
	// padding at its end, which is where command data starts.
	headerSize = 312
	// specSize is sizeof(struct dm_target_spec); the target's parameter
	// string follows it.
	specSize = 40

	// nameLen and uuidLen are the sizes of the name and uuid fields, each
	// including the terminating NUL.
	nameLen = 128
	uuidLen = 129
	// typeLen is the size of a target spec's type field, including the
	// terminating NUL.
	typeLen = 16

	// specAlign is the alignment the kernel needs for every target spec:
	// it reads their 64-bit fields in place.
	specAlign = 8
)

// Offsets of the fields of struct dm_ioctl.
const (
	offVersion     = 0 // __u32 version[3]
	offDataSize    = 12
	offDataStart   = 16
	offTargetCount = 20
	offOpenCount   = 24
	offFlags       = 28
	offEventNr     = 32
	// 4 bytes of padding
	offDev  = 40
	offName = 48
	offUUID = offName + nameLen
)

// Offsets of the fields of struct dm_target_spec.
const (
	offSpecStart  = 0
	offSpecLength = 8
	// __s32 status, which only the kernel writes
	offSpecNext = 20
	offSpecType = 24
)

// Flags of struct dm_ioctl used by this package.
const (
	// flagReadOnly makes DM_TABLE_LOAD load a read-only table.
	flagReadOnly = 1 << 0
	// flagSuspend makes DM_DEV_SUSPEND suspend rather than resume.
	flagSuspend = 1 << 1
	// flagStatusTable makes DM_TABLE_STATUS return the table rather than
	// the targets' status.
	flagStatusTable = 1 << 4
	// flagBufferFull is set by the kernel in a reply that did not fit.
	flagBufferFull = 1 << 8
)

// interfaceVersion is the version of the ioctl interface this package sends
// with every request. The kernel accepts requests of its major version and
// any minor version up to its own; 4.0 has everything used here.
var interfaceVersion = [3]uint32{4, 0, 0}

// order is the byte order of the kernel's structs.
var order = binary.NativeEndian

// header holds the fields of struct dm_ioctl.
type header struct {
	version     [3]uint32
	dataSize    uint32
	dataStart   uint32
	targetCount uint32
	openCount   int32
	flags       uint32
	eventNr     uint32
	dev         uint64
	name        string
	uuid        string
}

// checkName checks a device name for what the kernel accepts.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("device name is empty")
	case len(name) >= nameLen:
		return fmt.Errorf("device name %q is %d bytes long, more than the %d the kernel allows", name, len(name), nameLen-1)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("device name %q contains a slash or NUL byte", name)
	case name == "." || name == ".." || name == "control":
		return fmt.Errorf("device name %q is reserved", name)
	}
	return nil
}

// marshal writes h into b, which is at least headerSize bytes long and
// zero where h has nothing to say. Names that do not fit are cut: callers
// check them with checkName first.
func (h *header) marshal(b []byte) {
	for i, v := range h.version {
		order.PutUint32(b[offVersion+4*i:], v)
	}
	order.PutUint32(b[offDataSize:], h.dataSize)
	order.PutUint32(b[offDataStart:], h.dataStart)
	order.PutUint32(b[offTargetCount:], h.targetCount)
	order.PutUint32(b[offOpenCount:], uint32(h.openCount))
	order.PutUint32(b[offFlags:], h.flags)
	order.PutUint32(b[offEventNr:], h.eventNr)
	order.PutUint64(b[offDev:], h.dev)
	copy(b[offName:offName+nameLen-1], h.name)
	copy(b[offUUID:offUUID+uuidLen-1], h.uuid)
}

// parseHeader reads the struct dm_ioctl at the start of b, which is at
// least headerSize bytes long.
func parseHeader(b []byte) header {
	var h header
	for i := range h.version {
		h.version[i] = order.Uint32(b[offVersion+4*i:])
	}
	h.dataSize = order.Uint32(b[offDataSize:])
	h.dataStart = order.Uint32(b[offDataStart:])
	h.targetCount = order.Uint32(b[offTargetCount:])
	h.openCount = int32(order.Uint32(b[offOpenCount:]))
	h.flags = order.Uint32(b[offFlags:])
	h.eventNr = order.Uint32(b[offEventNr:])
	h.dev = order.Uint64(b[offDev:])
	h.name = cString(b[offName : offName+nameLen])
	h.uuid = cString(b[offUUID : offUUID+uuidLen])
	return h
}

// cString returns the NUL-terminated string at the start of b, or all of b
// if it has no NUL.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// align rounds n up to a multiple of specAlign.
func align(n int) int {
	return (n + specAlign - 1) &^ (specAlign - 1)
}

// checkTarget checks a target for what the kernel accepts.
func checkTarget(t Target) error {
	switch {
	case t.Type == "":
		return errors.New("target type is empty")
	case len(t.Type) >= typeLen:
		return fmt.Errorf("target type %q is longer than the %d bytes the kernel allows", t.Type, typeLen-1)
	case strings.IndexByte(t.Type, 0) >= 0:
		return fmt.Errorf("target type %q contains a NUL byte", t.Type)
	case strings.IndexByte(t.Parameters, 0) >= 0:
		return errors.New("target parameters contain a NUL byte")
	case t.Length == 0:
		return errors.New("target length is zero")
	case t.StartSector+t.Length < t.StartSector:
		return fmt.Errorf("target of %d sectors at sector %d ends beyond the largest sector number", t.Length, t.StartSector)
	}
	return nil
}

// marshalTargets returns the data of a DM_TABLE_LOAD command: each target
// as a struct dm_target_spec followed by its NUL-terminated parameters,
// padded so that the next spec is aligned. Each spec's next field is the
// distance from its own start to the next spec's.
func marshalTargets(targets []Target) ([]byte, error) {
	var b []byte
	for i, t := range targets {
		if err := checkTarget(t); err != nil {
			return nil, fmt.Errorf("target %d: %w", i, err)
		}
		n := align(specSize + len(t.Parameters) + 1)
		spec := make([]byte, n)
		order.PutUint64(spec[offSpecStart:], t.StartSector)
		order.PutUint64(spec[offSpecLength:], t.Length)
		order.PutUint32(spec[offSpecNext:], uint32(n))
		copy(spec[offSpecType:], t.Type)
		copy(spec[specSize:], t.Parameters)
		b = append(b, spec...)
	}
	return b, nil
}

// parseTargets reads the targets a DM_TABLE_STATUS command returned in
// reply, a buffer starting with the struct dm_ioctl whose fields h holds.
// The kernel links the specs by their distance from the first spec, and
// puts a table line or a status line after each, as asked.
func parseTargets(reply []byte, h header) ([]Target, error) {
	if h.dataStart < headerSize || h.dataSize > uint32(len(reply)) || h.dataStart > h.dataSize {
		return nil, fmt.Errorf("reply has data from byte %d to %d of a %d-byte buffer", h.dataStart, h.dataSize, len(reply))
	}
	data := reply[h.dataStart:h.dataSize]
	targets := make([]Target, 0, h.targetCount)
	off := 0
	for i := range int(h.targetCount) {
		if off+specSize > len(data) {
			return nil, fmt.Errorf("reply ends within target %d of %d", i, h.targetCount)
		}
		spec := data[off:]
		params := spec[specSize:]
		end := bytes.IndexByte(params, 0)
		if end < 0 {
			return nil, fmt.Errorf("parameters of target %d are not terminated", i)
		}
		targets = append(targets, Target{
			StartSector: order.Uint64(spec[offSpecStart:]),
			Length:      order.Uint64(spec[offSpecLength:]),
			Type:        cString(spec[offSpecType : offSpecType+typeLen]),
			Parameters:  string(params[:end]),
		})
		next := int(order.Uint32(spec[offSpecNext:]))
		if i+1 < int(h.targetCount) && next <= off {
			return nil, fmt.Errorf("target %d links back to byte %d", i, next)
		}
		off = next
	}
	return targets, nil
}

// A request is a command's struct dm_ioctl and data.
type request struct {
	// name names the device the command is for, if any.
	name        string
	flags       uint32
	targetCount uint32
	// data follows the struct.
	data []byte
}

// buffer returns the request as the kernel reads it, with room for at
// least replySpace bytes of data in the reply.
func (r request) buffer(replySpace int) []byte {
	size := headerSize + max(len(r.data), replySpace)
	b := make([]byte, size)
	h := header{
		version:     interfaceVersion,
		dataSize:    uint32(size),
		dataStart:   headerSize,
		targetCount: r.targetCount,
		flags:       r.flags,
		name:        r.name,
	}
	h.marshal(b)
	copy(b[headerSize:], r.data)
	return b
}

// A command is a device-mapper ioctl.
type command struct {
	// nr is the command's number, DM_*_CMD in the kernel's header.
	nr uint8
	// name is the name of its ioctl, for errors.
	name string
}

var (
	cmdVersion     = command{0, "DM_VERSION"}
	cmdDevCreate   = command{3, "DM_DEV_CREATE"}
	cmdDevRemove   = command{4, "DM_DEV_REMOVE"}
	cmdDevSuspend  = command{6, "DM_DEV_SUSPEND"}
	cmdTableLoad   = command{9, "DM_TABLE_LOAD"}
	cmdTableStatus = command{12, "DM_TABLE_STATUS"}
)

// ioctlType is the ioctl type of device-mapper, DM_IOCTL.
const ioctlType = 0xfd

// number returns the ioctl request number of c, _IOWR(DM_IOCTL, nr,
// struct dm_ioctl): every command both reads and writes the struct.
func (c command) number() uint32 {
	const (
		iocRead  = 2
		iocWrite = 1
	)
	return (iocRead|iocWrite)<<30 | headerSize<<16 | ioctlType<<8 | uint32(c.nr)
}
