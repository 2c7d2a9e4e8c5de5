package efivarfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"

	"metropolis.dev/osbase/gpt"
)

// LoadOptionActive is the attribute bit of a boot entry the boot manager
// may boot.
const LoadOptionActive = 0x1

// A LoadOption is a boot entry (EFI_LOAD_OPTION, UEFI specification, section
// 3.1.3): what the firmware's boot manager shows and loads.
type LoadOption struct {
	// Attributes are LoadOption* bits.
	Attributes uint32
	// Description is the name the boot menu shows.
	Description string
	// FilePath locates the image to load, without the end node.
	FilePath DevicePath
	// OptionalData is passed to the image as its load options. systemd's
	// UEFI stub takes it as the kernel command line when Secure Boot is
	// off, so entries of unified kernel images leave it empty.
	OptionalData []byte
}

// A DevicePath is a list of device path nodes (UEFI specification,
// chapter 10).
type DevicePath []DevicePathNode

// A DevicePathNode is one node of a device path: HardDrive, FilePath or,
// when read from a variable, any other node as UnknownNode.
type DevicePathNode interface {
	// typ returns the node's type and subtype, body its content after
	// the 4-byte header.
	typ() (uint8, uint8)
	body() ([]byte, error)
}

// Device path node types and subtypes this package encodes.
const (
	typeMedia       = 0x04
	subHardDrive    = 0x01
	subFilePath     = 0x04
	typeEnd         = 0x7f
	subEndEntire    = 0xff
	nodeHeaderSize  = 4
	hardDriveLength = 42
	mbrTypeGPT      = 0x02
	sigTypeGUID     = 0x02
)

// HardDrive is a partition of a GPT disk, identified by its unique GUID
// (PARTUUID), number and place.
type HardDrive struct {
	// PartitionNumber counts from 1.
	PartitionNumber uint32
	// Start and Size are in logical blocks.
	Start, Size uint64
	// PartitionGUID is the partition's unique GUID.
	PartitionGUID gpt.GUID
}

func (HardDrive) typ() (uint8, uint8) { return typeMedia, subHardDrive }

func (h HardDrive) body() ([]byte, error) {
	b := binary.LittleEndian.AppendUint32(nil, h.PartitionNumber)
	b = binary.LittleEndian.AppendUint64(b, h.Start)
	b = binary.LittleEndian.AppendUint64(b, h.Size)
	b = append(b, guidToUEFI(h.PartitionGUID)...)
	return append(b, mbrTypeGPT, sigTypeGUID), nil
}

// FilePath is a file on the partition before it in the path, such as
// \EFI\BOOT\BOOTX64.EFI, with backslashes.
type FilePath string

func (FilePath) typ() (uint8, uint8) { return typeMedia, subFilePath }

func (f FilePath) body() ([]byte, error) {
	if strings.ContainsRune(string(f), 0) {
		return nil, fmt.Errorf("file path %q contains NUL", string(f))
	}
	return utf16z(string(f)), nil
}

// UnknownNode is a device path node this package does not decode.
type UnknownNode struct {
	Type, SubType uint8
	Data          []byte
}

func (u UnknownNode) typ() (uint8, uint8)   { return u.Type, u.SubType }
func (u UnknownNode) body() ([]byte, error) { return u.Data, nil }

// guidToUEFI returns g in the byte order UEFI stores GUIDs: the first
// three groups little-endian.
func guidToUEFI(g gpt.GUID) []byte {
	b := g[:]
	return []byte{b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]}
}

// guidFromUEFI is the inverse of guidToUEFI.
func guidFromUEFI(b []byte) gpt.GUID {
	var g gpt.GUID
	copy(g[:], guidToUEFI(gpt.GUID(b)))
	return g
}

// utf16z encodes s as NUL-terminated UTF-16LE.
func utf16z(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, u)
	}
	return append(b, 0, 0)
}

// Marshal encodes the device path, followed by its end node.
func (p DevicePath) Marshal() ([]byte, error) {
	var b []byte
	for _, n := range p {
		body, err := n.body()
		if err != nil {
			return nil, err
		}
		t, st := n.typ()
		if t == typeEnd {
			return nil, errors.New("end node inside a device path")
		}
		if len(body)+nodeHeaderSize > 0xffff {
			return nil, fmt.Errorf("device path node of %d bytes is too long", len(body))
		}
		b = append(b, t, st)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(body)+nodeHeaderSize))
		b = append(b, body...)
	}
	return append(b, typeEnd, subEndEntire, nodeHeaderSize, 0), nil
}

// Marshal encodes the load option as a Boot#### variable's value.
func (o *LoadOption) Marshal() ([]byte, error) {
	if strings.ContainsRune(o.Description, 0) {
		return nil, errors.New("description contains NUL")
	}
	path, err := o.FilePath.Marshal()
	if err != nil {
		return nil, err
	}
	if len(path) > 0xffff {
		return nil, fmt.Errorf("device path of %d bytes is too long", len(path))
	}
	b := binary.LittleEndian.AppendUint32(nil, o.Attributes)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(path)))
	b = append(b, utf16z(o.Description)...)
	b = append(b, path...)
	return append(b, o.OptionalData...), nil
}

// UnmarshalLoadOption decodes a Boot#### variable's value. Of a device path
// with several instances, it keeps the first.
func UnmarshalLoadOption(b []byte) (*LoadOption, error) {
	if len(b) < 6 {
		return nil, fmt.Errorf("load option of %d bytes is too short", len(b))
	}
	o := &LoadOption{Attributes: binary.LittleEndian.Uint32(b)}
	pathLen := int(binary.LittleEndian.Uint16(b[4:]))
	rest := b[6:]
	var desc []uint16
	for {
		if len(rest) < 2 {
			return nil, errors.New("load option description is not terminated")
		}
		u := binary.LittleEndian.Uint16(rest)
		rest = rest[2:]
		if u == 0 {
			break
		}
		desc = append(desc, u)
	}
	o.Description = string(utf16.Decode(desc))
	if pathLen > len(rest) {
		return nil, fmt.Errorf("device path of %d bytes runs past the load option's end", pathLen)
	}
	path, err := unmarshalDevicePath(rest[:pathLen])
	if err != nil {
		return nil, err
	}
	o.FilePath = path
	if len(rest) > pathLen {
		o.OptionalData = append([]byte(nil), rest[pathLen:]...)
	}
	return o, nil
}

// unmarshalDevicePath decodes a device path up to its first end node.
func unmarshalDevicePath(b []byte) (DevicePath, error) {
	var p DevicePath
	for {
		if len(b) < nodeHeaderSize {
			return nil, errors.New("device path ends without an end node")
		}
		t, st, n := b[0], b[1], int(binary.LittleEndian.Uint16(b[2:]))
		if n < nodeHeaderSize || n > len(b) {
			return nil, fmt.Errorf("device path node of type %#x/%#x has invalid length %d", t, st, n)
		}
		body := b[nodeHeaderSize:n]
		b = b[n:]
		switch {
		case t == typeEnd:
			return p, nil
		case t == typeMedia && st == subHardDrive && n == hardDriveLength && body[36] == mbrTypeGPT && body[37] == sigTypeGUID:
			p = append(p, HardDrive{
				PartitionNumber: binary.LittleEndian.Uint32(body),
				Start:           binary.LittleEndian.Uint64(body[4:]),
				Size:            binary.LittleEndian.Uint64(body[12:]),
				PartitionGUID:   guidFromUEFI(body[20:36]),
			})
		case t == typeMedia && st == subFilePath:
			if len(body)%2 != 0 || len(body) < 2 || body[len(body)-2] != 0 || body[len(body)-1] != 0 {
				return nil, errors.New("file path node is not NUL-terminated UTF-16")
			}
			u := make([]uint16, len(body)/2-1)
			for i := range u {
				u[i] = binary.LittleEndian.Uint16(body[2*i:])
			}
			p = append(p, FilePath(utf16.Decode(u)))
		default:
			p = append(p, UnknownNode{Type: t, SubType: st, Data: append([]byte(nil), body...)})
		}
	}
}
