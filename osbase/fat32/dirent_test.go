package fat32

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestTimestamp(t *testing.T) {
	for _, tc := range []struct {
		time time.Time
		want timestamp
		err  string
	}{
		// Expected values computed independently from the format.
		{time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC), timestamp{0x0021, 0x0000, 0}, ""},
		{time.Date(2024, 5, 6, 7, 8, 9, 500_000_000, time.UTC), timestamp{0x58a6, 0x3904, 150}, ""},
		{time.Date(2107, 12, 31, 23, 59, 59, 999_999_999, time.UTC), timestamp{0xff9f, 0xbf7d, 199}, ""},
		{time.Date(1979, 12, 31, 23, 59, 59, 0, time.UTC), timestamp{}, "outside FAT's years 1980 to 2107"},
		{time.Date(2108, 1, 1, 0, 0, 0, 0, time.UTC), timestamp{}, "outside FAT's years"},
	} {
		got, err := newTimestamp(tc.time)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("newTimestamp(%v) = %v, want error %q", tc.time, err, tc.err)
			}
		} else if err != nil || got != tc.want {
			t.Errorf("newTimestamp(%v) = %+v, %v; want %+v", tc.time, got, err, tc.want)
		}
	}
}

// longEntryUnits returns the 13 UTF-16 code units of the long name entry e.
func longEntryUnits(e []byte) []uint16 {
	var units []uint16
	for _, r := range [][2]int{{1, 11}, {14, 26}, {28, 32}} {
		for i := r[0]; i < r[1]; i += 2 {
			units = append(units, binary.LittleEndian.Uint16(e[i:]))
		}
	}
	return units
}

func TestLongEntries(t *testing.T) {
	const (
		nul = 0x0000
		pad = 0xffff
	)
	a, b := uint16('a'), uint16('b')
	for _, tc := range []struct {
		name string
		// want are the units of each entry, in directory order (the end of
		// the name first).
		want [][]uint16
	}{
		{"ab", [][]uint16{{a, b, nul, pad, pad, pad, pad, pad, pad, pad, pad, pad, pad}}},
		{strings.Repeat("a", 13), [][]uint16{{a, a, a, a, a, a, a, a, a, a, a, a, a}}},
		{strings.Repeat("a", 13) + "b", [][]uint16{
			{b, nul, pad, pad, pad, pad, pad, pad, pad, pad, pad, pad, pad},
			{a, a, a, a, a, a, a, a, a, a, a, a, a},
		}},
		// A surrogate pair for U+1F600.
		{"😀b", [][]uint16{{0xd83d, 0xde00, b, nul, pad, pad, pad, pad, pad, pad, pad, pad, pad}}},
	} {
		b := make([]byte, 4*dirEntrySize)
		n := putLongEntries(b, tc.name, 0x5a)
		if n != len(tc.want)*dirEntrySize || longEntries(tc.name) != len(tc.want) {
			t.Errorf("%q: %d bytes of entries, longEntries %d; want %d entries", tc.name, n, longEntries(tc.name), len(tc.want))
			continue
		}
		for i, want := range tc.want {
			e := b[i*dirEntrySize:][:dirEntrySize]
			order := byte(len(tc.want) - i)
			if i == 0 {
				order |= 0x40
			}
			if e[0] != order || e[11] != 0x0f || e[12] != 0 || e[13] != 0x5a || e[26] != 0 || e[27] != 0 {
				t.Errorf("%q entry %d: order %#x, attributes %#x, type %d, checksum %#x, cluster %d; want order %#x, 0x0f, 0, 0x5a, 0",
					tc.name, i, e[0], e[11], e[12], e[13], binary.LittleEndian.Uint16(e[26:]), order)
			}
			if got := longEntryUnits(e); !slices.Equal(got, want) {
				t.Errorf("%q entry %d holds %#04x, want %#04x", tc.name, i, got, want)
			}
		}
	}
}
