package gpt

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Layout of a partition entry, UEFI specification 2.10, section 5.3.3.
const (
	// entrySize is the size of the entries Write emits, and the smallest
	// Read accepts; larger entries have reserved bytes at the end.
	entrySize = 128
	// MaxNameLen is the longest partition name in UTF-16 code units: 36,
	// so most names can have 36 characters, fewer with characters outside
	// the Basic Multilingual Plane.
	MaxNameLen = 36
)

// marshalEntry stores p in the entry b[:entrySize], which must be zero.
func marshalEntry(b []byte, p *Partition) {
	p.Type.encode(b[0:16])
	p.ID.encode(b[16:32])
	le := binary.LittleEndian
	le.PutUint64(b[32:40], p.FirstLBA)
	le.PutUint64(b[40:48], p.LastLBA)
	le.PutUint64(b[48:56], p.Attributes)
	for i, u := range utf16.Encode([]rune(p.Name)) {
		le.PutUint16(b[56+2*i:], u)
	}
}

// parseEntry returns the partition stored in the entry b, or nil if the
// entry is unused. Checking its block range is for the caller.
func parseEntry(b []byte) *Partition {
	typ := decodeGUID(b[0:16])
	if typ == ZeroGUID {
		return nil
	}
	le := binary.LittleEndian
	var name []uint16
	for i := 56; i < 56+2*MaxNameLen; i += 2 {
		u := le.Uint16(b[i:])
		if u == 0 {
			break
		}
		name = append(name, u)
	}
	return &Partition{
		Type:       typ,
		ID:         decodeGUID(b[16:32]),
		Name:       string(utf16.Decode(name)),
		FirstLBA:   le.Uint64(b[32:40]),
		LastLBA:    le.Uint64(b[40:48]),
		Attributes: le.Uint64(b[48:56]),
	}
}

// checkName tells why name cannot be stored in a partition entry, or nil.
func checkName(name string) error {
	if !utf8.ValidString(name) {
		return fmt.Errorf("name %q is not valid UTF-8", name)
	}
	if strings.ContainsRune(name, 0) {
		return fmt.Errorf("name %q contains NUL", name)
	}
	if n := len(utf16.Encode([]rune(name))); n > MaxNameLen {
		return fmt.Errorf("name %q has %d UTF-16 code units, more than %d", name, n, MaxNameLen)
	}
	return nil
}
