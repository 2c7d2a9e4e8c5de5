package fat32

import (
	"encoding/binary"
	"fmt"
	"time"
	"unicode/utf16"
)

// Directory entries, Microsoft's FAT specification, sections 6 and 7.
const (
	dirEntrySize = 32
	// maxDirEntries is the most entries a directory may have, as entry
	// indices are 16 bits wide in some implementations.
	maxDirEntries = 65536
	// longNameChars is how many UTF-16 code units a long name entry holds.
	longNameChars = 13

	attrVolumeID = 0x08
	attrDir      = 0x10
	attrArchive  = 0x20
	// attrLongName marks long name entries: read-only, hidden, system and
	// volume label at once, which older readers skip.
	attrLongName = 0x0f
	// lastLongEntry is set in the order byte of the last long name entry,
	// which comes first in the directory.
	lastLongEntry = 0x40
)

// timestamp is a point in time as directory entries store it.
type timestamp struct {
	date, time uint16
	// tenMillis is the part of the creation time below 2 seconds, in
	// units of 10 ms.
	tenMillis byte
}

// newTimestamp converts t, which must be in FAT's range of 1980 to 2107.
func newTimestamp(t time.Time) (timestamp, error) {
	if t.Year() < 1980 || t.Year() > 2107 {
		return timestamp{}, fmt.Errorf("time %v is outside FAT's years 1980 to 2107", t)
	}
	return timestamp{
		date:      uint16(t.Year()-1980)<<9 | uint16(t.Month())<<5 | uint16(t.Day()),
		time:      uint16(t.Hour())<<11 | uint16(t.Minute())<<5 | uint16(t.Second()/2),
		tenMillis: byte(t.Second()%2*100 + t.Nanosecond()/10_000_000),
	}, nil
}

// putShortEntry stores a short (8.3) directory entry in b.
func putShortEntry(b []byte, name shortName, attr byte, cluster, size uint32, ts timestamp) {
	le := binary.LittleEndian
	copy(b[0:11], name[:])
	b[11] = attr
	b[13] = ts.tenMillis
	le.PutUint16(b[14:], ts.time)
	le.PutUint16(b[16:], ts.date)
	le.PutUint16(b[18:], ts.date)
	le.PutUint16(b[20:], uint16(cluster>>16))
	le.PutUint16(b[22:], ts.time)
	le.PutUint16(b[24:], ts.date)
	le.PutUint16(b[26:], uint16(cluster))
	le.PutUint32(b[28:], size)
}

// longEntries is the number of long name entries name needs.
func longEntries(name string) int {
	return (len(utf16.Encode([]rune(name))) + longNameChars - 1) / longNameChars
}

// longNameOffsets are where the 13 characters of a long name entry are.
var longNameOffsets = [longNameChars]int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30}

// putLongEntries stores the long name entries for name, which belong to
// the short entry with checksum sum, at the start of b, last part first.
// It returns the number of bytes used.
func putLongEntries(b []byte, name string, sum byte) int {
	units := utf16.Encode([]rune(name))
	n := longEntries(name)
	for i := range n {
		// The entry for part k of the name (from 1) is the (n-k)th.
		k := n - i
		e := b[i*dirEntrySize : (i+1)*dirEntrySize]
		e[0] = byte(k)
		if k == n {
			e[0] |= lastLongEntry
		}
		e[11] = attrLongName
		e[13] = sum
		for j, off := range longNameOffsets {
			var u uint16
			switch pos := (k-1)*longNameChars + j; {
			case pos < len(units):
				u = units[pos]
			case pos > len(units):
				// After the terminating NUL, unused characters are 0xFFFF.
				u = 0xffff
			}
			binary.LittleEndian.PutUint16(e[off:], u)
		}
	}
	return n * dirEntrySize
}
