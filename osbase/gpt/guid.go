package gpt

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// GUID is a globally unique identifier, held in the order in which its
// string form reads. On disk, UEFI stores the first three groups
// little-endian and the last two as they are; encode and decodeGUID convert.
type GUID [16]byte

// ZeroGUID is the all-zero GUID. As a partition type it marks an unused
// partition entry; it is not a valid disk or partition GUID.
var ZeroGUID GUID

// ParseGUID parses the canonical form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx,
// in either case.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("gpt: GUID %q is not of the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", s)
	}
	digits := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	if _, err := hex.Decode(g[:], []byte(digits)); err != nil {
		return ZeroGUID, fmt.Errorf("gpt: GUID %q: %w", s, err)
	}
	return g, nil
}

// mustParseGUID is ParseGUID for constants in this package.
func mustParseGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// String returns the canonical lowercase form, as Linux shows GUIDs (in
// PARTUUID= and /dev/disk/by-partuuid).
func (g GUID) String() string {
	h := hex.EncodeToString(g[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// encode writes g to b[:16] in the mixed-endian order of UEFI.
func (g GUID) encode(b []byte) {
	binary.LittleEndian.PutUint32(b[0:4], binary.BigEndian.Uint32(g[0:4]))
	binary.LittleEndian.PutUint16(b[4:6], binary.BigEndian.Uint16(g[4:6]))
	binary.LittleEndian.PutUint16(b[6:8], binary.BigEndian.Uint16(g[6:8]))
	copy(b[8:16], g[8:16])
}

// decodeGUID reads a GUID stored by encode from b[:16].
func decodeGUID(b []byte) GUID {
	var g GUID
	binary.BigEndian.PutUint32(g[0:4], binary.LittleEndian.Uint32(b[0:4]))
	binary.BigEndian.PutUint16(g[4:6], binary.LittleEndian.Uint16(b[4:6]))
	binary.BigEndian.PutUint16(g[6:8], binary.LittleEndian.Uint16(b[6:8]))
	copy(g[8:16], b[8:16])
	return g
}

// RandomGUID returns a random version 4 GUID, for disks and partitions that
// must be unique, such as those of a node being installed.
func RandomGUID() GUID {
	var g GUID
	rand.Read(g[:]) // Never fails, see crypto/rand.Read.
	return g.asVersion4()
}

// DerivedGUID returns a GUID that depends only on seed and name, for
// reproducible images: building an image twice from the same inputs gives
// the same GUIDs, while different names (say, "disk" and "ESP") or seeds
// (say, one per image) give different ones. It is the start of SHA-256 of
// both inputs, marked as a version 4 GUID so that it looks like any other
// to tools that check.
func DerivedGUID(seed, name string) GUID {
	h := sha256.New()
	// The lengths keep ("ab", "c") and ("a", "bc") apart.
	var lengths [16]byte
	binary.BigEndian.PutUint64(lengths[0:8], uint64(len(seed)))
	binary.BigEndian.PutUint64(lengths[8:16], uint64(len(name)))
	h.Write(lengths[:])
	h.Write([]byte(seed))
	h.Write([]byte(name))
	var g GUID
	copy(g[:], h.Sum(nil))
	return g.asVersion4()
}

// asVersion4 sets the version (4, random) and variant (RFC 9562) bits.
func (g GUID) asVersion4() GUID {
	g[6] = g[6]&0x0f | 0x40
	g[8] = g[8]&0x3f | 0x80
	return g
}
