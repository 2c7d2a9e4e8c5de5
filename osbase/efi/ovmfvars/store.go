package ovmfvars

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf16"
)

var le = binary.LittleEndian

// EFI_FIRMWARE_VOLUME_HEADER (UEFI Platform Initialization specification,
// volume 3): offsets of its fields and the values a variable store's volume
// has.
const (
	fvOffFileSystemGUID = 16
	fvOffLength         = 32 // uint64
	fvOffSignature      = 40 // "_FVH"
	fvOffHeaderLength   = 48 // uint16
	fvOffRevision       = 55 // uint8
	fvOffBlockMap       = 56 // {uint32 blocks, uint32 length}..., {0, 0}
	fvSignature         = "_FVH"
	fvRevision          = 2
	fvBlockMapEntrySize = 8
)

// VARIABLE_STORE_HEADER (EDK2, MdeModulePkg VariableFormat.h).
const (
	storeHeaderSize = 28
	storeOffSize    = 16 // uint32, including this header
	storeOffFormat  = 20
	storeOffState   = 21
	// storeFormatted and storeHealthy are the Format and State of a
	// usable store.
	storeFormatted = 0x5a
	storeHealthy   = 0xfe
)

// AUTHENTICATED_VARIABLE_HEADER (EDK2, MdeModulePkg VariableFormat.h),
// followed by the NUL-terminated UTF-16 name and the data. Each header
// starts at a multiple of 4 from the store.
const (
	varHeaderSize        = 60
	varOffStartID        = 0  // uint16
	varOffState          = 2  // uint8
	varOffAttributes     = 4  // uint32
	varOffMonotonicCount = 8  // uint64
	varOffTimestamp      = 16 // EFI_TIME
	varOffPubKeyIndex    = 32 // uint32
	varOffNameSize       = 36 // uint32, bytes, including the NUL
	varOffDataSize       = 40 // uint32
	varOffVendor         = 44 // GUID
	varStartID           = 0x55aa
	varAlignment         = 4
)

// Variable states. Flash bits can only be cleared without erasing a block,
// so the firmware advances a variable's state by clearing bits: a variable
// being written has its header written first (VarHeaderValidOnly), then its
// name and data (VarAdded); one being replaced is first marked as in
// transition, and deleted once its successor is added.
const (
	VarInDeletedTransition = 0xfe
	VarDeleted             = 0xfd
	VarHeaderValidOnly     = 0x7f
	VarAdded               = 0x3f
)

// Variable attributes (UEFI specification, section 8.2).
const (
	AttrNonVolatile                       = 0x01
	AttrBootServiceAccess                 = 0x02
	AttrRuntimeAccess                     = 0x04
	AttrTimeBasedAuthenticatedWriteAccess = 0x20
)

// A Variable is one record in a variable store.
type Variable struct {
	// Name is the variable's name, such as "PK".
	Name string
	// Vendor is the GUID that, with the name, identifies the variable.
	Vendor GUID
	// State is one of the Var* states, or a combination the firmware
	// left; see Live.
	State uint8
	// Attributes are the Attr* bits.
	Attributes uint32
	// MonotonicCount is used by count-based authenticated variables.
	MonotonicCount uint64
	// Timestamp is the time of the last authenticated write of a
	// time-based authenticated variable, in UTC, or the zero time.
	Timestamp time.Time
	// PubKeyIndex is used by count-based authenticated variables.
	PubKeyIndex uint32
	// Data is the variable's value.
	Data []byte
	// Offset is where the record's header starts in the file.
	Offset int
}

// Live reports whether the firmware uses the record as the variable's
// value: it was completely added, and not deleted. A variable in transition
// to deletion is still live until its successor is added.
func (v *Variable) Live() bool {
	return v.State == VarAdded || v.State == VarAdded&VarInDeletedTransition
}

// A Store is a variable store file of OVMF, such as Debian's
// OVMF_VARS_4M.fd: a firmware volume that begins with the variable store
// and may continue with other areas (EDK2's fault-tolerant write working
// block and spare area), which Store keeps as they are.
type Store struct {
	file []byte
	// start and end delimit the store's variable area in file; free is
	// where its free space begins.
	start, end, free int
	vars             []Variable
}

// Parse parses a variable store file. It checks the firmware volume header
// (signature, file system GUID, revision, checksum, block map), the
// variable store header (authenticated format, formatted, healthy) and
// every record up to the free space, and explains the first problem it
// finds. The store keeps its own copy of data.
func Parse(data []byte) (*Store, error) {
	file := bytes.Clone(data)
	start, end, err := parseVolume(file)
	if err != nil {
		return nil, err
	}
	s := &Store{file: file, start: start, end: end}
	off := start
	for off+varHeaderSize <= end && le.Uint16(file[off+varOffStartID:]) == varStartID {
		v, next, err := parseVariable(file, off, end)
		if err != nil {
			return nil, fmt.Errorf("variable at offset %#x: %w", off, err)
		}
		s.vars = append(s.vars, v)
		off = next
	}
	s.free = min(off, end)
	return s, nil
}

// parseVolume checks the firmware volume and variable store headers and
// returns where the variable records begin and end.
func parseVolume(file []byte) (start, end int, err error) {
	if len(file) < fvOffBlockMap+2*fvBlockMapEntrySize {
		return 0, 0, fmt.Errorf("%d bytes is too short for a firmware volume header", len(file))
	}
	if sig := string(file[fvOffSignature : fvOffSignature+4]); sig != fvSignature {
		return 0, 0, fmt.Errorf("no firmware volume: signature %q, want %q", sig, fvSignature)
	}
	if g := GUID(file[fvOffFileSystemGUID:]); g != SystemNVDataFVGUID {
		return 0, 0, fmt.Errorf("firmware volume of file system %v, want the variable store's %v", g, SystemNVDataFVGUID)
	}
	if rev := file[fvOffRevision]; rev != fvRevision {
		return 0, 0, fmt.Errorf("firmware volume header revision %d, want %d", rev, fvRevision)
	}
	fvLength := le.Uint64(file[fvOffLength:])
	if fvLength > uint64(len(file)) {
		return 0, 0, fmt.Errorf("firmware volume is %d bytes long, but the file has only %d", fvLength, len(file))
	}
	headerLength := int(le.Uint16(file[fvOffHeaderLength:]))
	if headerLength < fvOffBlockMap+2*fvBlockMapEntrySize || headerLength%2 != 0 || uint64(headerLength) > fvLength {
		return 0, 0, fmt.Errorf("firmware volume header length %d is invalid", headerLength)
	}
	var sum uint16
	for i := 0; i < headerLength; i += 2 {
		sum += le.Uint16(file[i:])
	}
	if sum != 0 {
		return 0, 0, fmt.Errorf("firmware volume header checksum is wrong (words sum to %#04x, want 0)", sum)
	}
	if err := checkBlockMap(file[fvOffBlockMap:headerLength], fvLength); err != nil {
		return 0, 0, err
	}

	start = headerLength
	if uint64(start+storeHeaderSize) > fvLength {
		return 0, 0, errors.New("the firmware volume has no room for a variable store header")
	}
	store := file[start:]
	if g := GUID(store); g != AuthenticatedVariableStoreGUID {
		return 0, 0, fmt.Errorf("variable store of format %v, want the authenticated format %v", g, AuthenticatedVariableStoreGUID)
	}
	size := uint64(le.Uint32(store[storeOffSize:]))
	if size < storeHeaderSize || uint64(start)+size > fvLength {
		return 0, 0, fmt.Errorf("variable store size %d does not fit in the %d bytes of the firmware volume after its %d-byte header", size, fvLength, headerLength)
	}
	if f := store[storeOffFormat]; f != storeFormatted {
		return 0, 0, fmt.Errorf("variable store format %#02x, want %#02x (formatted)", f, storeFormatted)
	}
	if st := store[storeOffState]; st != storeHealthy {
		return 0, 0, fmt.Errorf("variable store state %#02x, want %#02x (healthy)", st, storeHealthy)
	}
	return alignUp(start + storeHeaderSize), start + int(size), nil
}

// checkBlockMap checks that the block map in b ends with a zero entry and
// describes exactly fvLength bytes.
func checkBlockMap(b []byte, fvLength uint64) error {
	var total uint64
	for i := 0; i+fvBlockMapEntrySize <= len(b); i += fvBlockMapEntrySize {
		blocks, length := uint64(le.Uint32(b[i:])), uint64(le.Uint32(b[i+4:]))
		if blocks == 0 && length == 0 {
			if total != fvLength {
				return fmt.Errorf("firmware volume block map describes %d bytes, want its length %d", total, fvLength)
			}
			return nil
		}
		total += blocks * length
	}
	return errors.New("firmware volume block map has no terminating entry")
}

func alignUp(off int) int {
	return (off + varAlignment - 1) &^ (varAlignment - 1)
}

// parseVariable parses the record whose header, known to fit before end
// and to start with the start ID, is at off. It returns the offset of the
// next record's header.
func parseVariable(file []byte, off, end int) (Variable, int, error) {
	h := file[off : off+varHeaderSize]
	v := Variable{
		State:          h[varOffState],
		Attributes:     le.Uint32(h[varOffAttributes:]),
		MonotonicCount: le.Uint64(h[varOffMonotonicCount:]),
		Timestamp:      decodeTime(h[varOffTimestamp : varOffTimestamp+16]),
		PubKeyIndex:    le.Uint32(h[varOffPubKeyIndex:]),
		Vendor:         GUID(h[varOffVendor:]),
		Offset:         off,
	}
	nameSize, dataSize := uint64(le.Uint32(h[varOffNameSize:])), uint64(le.Uint32(h[varOffDataSize:]))
	nameStart := uint64(off + varHeaderSize)
	if nameStart+nameSize+dataSize > uint64(end) {
		return v, 0, fmt.Errorf("%d bytes of name and %d bytes of data run past the end of the store at %#x", nameSize, dataSize, end)
	}
	dataStart := nameStart + nameSize
	next := alignUp(int(dataStart + dataSize))
	if v.State == VarHeaderValidOnly {
		// The firmware stopped before writing the name and data: they
		// are not to be read, but the sizes say where the next record
		// is.
		return v, next, nil
	}
	name, err := decodeName(file[nameStart:dataStart])
	if err != nil {
		return v, 0, err
	}
	v.Name = name
	v.Data = bytes.Clone(file[dataStart : dataStart+dataSize])
	return v, next, nil
}

// decodeName decodes a NUL-terminated UTF-16LE variable name.
func decodeName(b []byte) (string, error) {
	if len(b) < 2 || len(b)%2 != 0 {
		return "", fmt.Errorf("name of %d bytes is not a NUL-terminated UTF-16 string", len(b))
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = le.Uint16(b[2*i:])
	}
	if u[len(u)-1] != 0 {
		return "", errors.New("name is not NUL-terminated")
	}
	u = u[:len(u)-1]
	for _, c := range u {
		if c == 0 {
			return "", errors.New("name has a NUL before its end")
		}
	}
	return string(utf16.Decode(u)), nil
}

// encodeName encodes a variable name as NUL-terminated UTF-16LE.
func encodeName(name string) []byte {
	u := utf16.Encode([]rune(name))
	b := make([]byte, 0, 2*len(u)+2)
	for _, c := range u {
		b = le.AppendUint16(b, c)
	}
	return le.AppendUint16(b, 0)
}

// decodeTime decodes an EFI_TIME. It ignores the time zone, which
// authenticated variables always have as 0 (UTC).
func decodeTime(b []byte) time.Time {
	year := le.Uint16(b[0:])
	if year == 0 {
		return time.Time{}
	}
	return time.Date(int(year), time.Month(b[2]), int(b[3]), int(b[4]), int(b[5]), int(b[6]), int(le.Uint32(b[8:])), time.UTC)
}

// encodeTime encodes t as an EFI_TIME in UTC; the zero time is all zero.
func encodeTime(t time.Time) ([16]byte, error) {
	var b [16]byte
	if t.IsZero() {
		return b, nil
	}
	t = t.UTC()
	if t.Year() < 1900 || t.Year() > 9999 {
		return b, fmt.Errorf("time %v is outside the years 1900 to 9999 that EFI_TIME holds", t)
	}
	le.PutUint16(b[0:], uint16(t.Year()))
	b[2], b[3], b[4], b[5], b[6] = byte(t.Month()), byte(t.Day()), byte(t.Hour()), byte(t.Minute()), byte(t.Second())
	le.PutUint32(b[8:], uint32(t.Nanosecond()))
	return b, nil
}

// Variables returns every record of the store in the order of the file,
// including those that are deleted or incomplete (see Variable.Live).
// The caller must not modify them.
func (s *Store) Variables() []Variable {
	return s.vars
}

// Get returns the live record of a variable, or nil if it has none. When a
// variable was being replaced, the new record wins over the one in
// transition, as in the firmware.
func (s *Store) Get(name string, vendor GUID) *Variable {
	var found *Variable
	for i := range s.vars {
		v := &s.vars[i]
		if v.Live() && v.Name == name && v.Vendor == vendor && (found == nil || v.State == VarAdded) {
			found = v
		}
	}
	return found
}

// Free returns how many bytes of the store are unused.
func (s *Store) Free() int {
	return s.end - s.free
}

// Set writes a variable as the firmware does: it appends a record with the
// variable's name, vendor, attributes, timestamp and data (the State,
// Offset, monotonic count and public key index of v are ignored), and marks
// the previous live records of the variable deleted.
func (s *Store) Set(v Variable) error {
	if v.Name == "" {
		return errors.New("setting a variable without a name")
	}
	name := encodeName(v.Name)
	ts, err := encodeTime(v.Timestamp)
	if err != nil {
		return fmt.Errorf("setting %s: %w", v.Name, err)
	}
	size := varHeaderSize + len(name) + len(v.Data)
	if size > s.Free() {
		return fmt.Errorf("setting %s: its %d-byte record does not fit in the store's %d free bytes", v.Name, size, s.Free())
	}
	for i := range s.vars {
		old := &s.vars[i]
		if old.Live() && old.Name == v.Name && old.Vendor == v.Vendor {
			old.State &= VarDeleted
			s.file[old.Offset+varOffState] = old.State
		}
	}
	off := s.free
	rec := s.file[off : off+size]
	le.PutUint16(rec[varOffStartID:], varStartID)
	rec[varOffState] = VarAdded
	rec[varOffState+1] = 0 // reserved
	le.PutUint32(rec[varOffAttributes:], v.Attributes)
	le.PutUint64(rec[varOffMonotonicCount:], 0)
	copy(rec[varOffTimestamp:], ts[:])
	le.PutUint32(rec[varOffPubKeyIndex:], 0)
	le.PutUint32(rec[varOffNameSize:], uint32(len(name)))
	le.PutUint32(rec[varOffDataSize:], uint32(len(v.Data)))
	copy(rec[varOffVendor:], v.Vendor[:])
	copy(rec[varHeaderSize:], name)
	copy(rec[varHeaderSize+len(name):], v.Data)
	s.vars = append(s.vars, Variable{
		Name:       v.Name,
		Vendor:     v.Vendor,
		State:      VarAdded,
		Attributes: v.Attributes,
		Timestamp:  decodeTime(ts[:]),
		Data:       bytes.Clone(v.Data),
		Offset:     off,
	})
	s.free = min(alignUp(off+size), s.end)
	return nil
}

// Bytes returns the store file with the changes made by Set.
func (s *Store) Bytes() []byte {
	return bytes.Clone(s.file)
}
