package fat32

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// shortName is a name in the 8.3 format of a directory entry: eight
// characters of base name and three of extension, padded with spaces.
type shortName [11]byte

// makeShortName packs base and ext, which must be short enough.
func makeShortName(base, ext string) shortName {
	var s shortName
	copy(s[:], base+strings.Repeat(" ", 8-len(base))+ext+strings.Repeat(" ", 3-len(ext)))
	return s
}

// checksum is the checksum of s that long name entries carry, by which
// readers tell whether they belong to the short entry that follows them.
func (s shortName) checksum() byte {
	var sum byte
	for _, c := range s {
		sum = (sum>>1 | sum<<7) + c
	}
	return sum
}

// isShortChar tells whether r may be in a short name: upper case letters,
// digits and some punctuation. Other bytes above 127 would be allowed, but
// their meaning depends on the reader's code page.
func isShortChar(r rune) bool {
	return r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'()-@^_`{}~", r)
}

// checkLongName tells why name cannot be a long name, or returns nil.
func checkLongName(name string) error {
	if !utf8.ValidString(name) {
		return errors.New("the name is not valid UTF-8")
	}
	for _, r := range name {
		if r < 0x20 || strings.ContainsRune(`"*/:<>?\|`, r) {
			return fmt.Errorf("FAT does not allow the character %q in names", r)
		}
	}
	if strings.HasSuffix(name, ".") || strings.HasSuffix(name, " ") {
		return errors.New("the name ends in a dot or space, which FAT implementations strip")
	}
	// FAT allows 255 UTF-16 code units, never fewer than the at most
	// structfs.MaxNameLen bytes of UTF-8.
	return nil
}

// exactShortName returns name as a short name if it is a valid one as it
// is, which needs no long name entries.
func exactShortName(name string) (shortName, bool) {
	base, ext, hasDot := strings.Cut(name, ".")
	if len(base) == 0 || len(base) > 8 || len(ext) > 3 || hasDot && len(ext) == 0 {
		return shortName{}, false
	}
	for _, r := range base + ext {
		if !isShortChar(r) {
			return shortName{}, false
		}
	}
	return makeShortName(base, ext), true
}

// basisName returns the base and extension of the short name that the
// long name name maps to before it is made unique: upper case, without
// spaces and leading dots, characters not allowed replaced by "_", the
// base cut at the first dot and eight characters, the extension taken
// from after the last dot and cut at three.
func basisName(name string) (base, ext string) {
	var b strings.Builder
	for _, r := range strings.ToUpper(name) {
		switch {
		case r == ' ':
		case r == '.' || isShortChar(r):
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := strings.TrimLeft(b.String(), ".")
	base, _, _ = strings.Cut(s, ".")
	base = base[:min(len(base), 8)]
	if i := strings.LastIndexByte(s, '.'); i >= 0 {
		ext = s[i+1:]
		ext = ext[:min(len(ext), 3)]
	}
	if base == "" {
		base = "_"
	}
	return base, ext
}

// assignShortNames gives every node of the directory children a unique
// short name and decides which need long names. Names that are valid short
// names keep them. The others get their upper case form if that is a valid
// short name not taken, and otherwise their basis name with the first free
// numeric tail from "~1" on: with n children, one of the first n is free.
// Nodes are taken in order, so the result depends only on the sorted names
// of the directory.
func assignShortNames(children []*node) {
	taken := make(map[shortName]bool)
	for _, c := range children {
		if s, ok := exactShortName(c.name); ok {
			c.short = s
			taken[s] = true
		} else {
			c.long = true
		}
	}
	// The next tail to try for each basis name, so that many names with
	// the same basis name take linear time.
	nextTail := make(map[[2]string]int)
	for _, c := range children {
		if !c.long {
			continue
		}
		s, ok := exactShortName(strings.ToUpper(c.name))
		if !ok || taken[s] {
			base, ext := basisName(c.name)
			basis := [2]string{base, ext}
			for n := max(nextTail[basis], 1); ; n++ {
				tail := "~" + strconv.Itoa(n)
				if s = makeShortName(base[:min(len(base), 8-len(tail))]+tail, ext); !taken[s] {
					nextTail[basis] = n + 1
					break
				}
			}
		}
		c.short = s
		taken[s] = true
	}
}
