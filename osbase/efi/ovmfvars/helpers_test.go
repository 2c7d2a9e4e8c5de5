package ovmfvars

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"
)

// Debian's OVMF variable stores (package ovmf).
const (
	blankStore    = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	snakeoilStore = "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd"
	snakeoilCert  = "/usr/share/ovmf/PkKek-1-snakeoil.pem"
)

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (install the Debian package ovmf)", err)
	}
	return b
}

// Sizes of the small stores tests build: a volume of smallBlocks blocks of
// smallBlockSize bytes, whose first storeBlocks hold the variable store and
// the rest stand for the fault-tolerant write areas.
const (
	smallBlockSize   = 512
	smallBlocks      = 8
	smallStoreBlocks = 4
	smallFVHeader    = fvOffBlockMap + 2*fvBlockMapEntrySize
)

// smallStore returns an empty store file laid out like OVMF's, but small
// enough for fuzzing, with the bytes after the store set to a pattern.
func smallStore() []byte {
	b := bytes.Repeat([]byte{0xff}, smallBlocks*smallBlockSize)
	for i := smallStoreBlocks * smallBlockSize; i < len(b); i++ {
		b[i] = byte(i)
	}
	copy(b[0:16], make([]byte, 16))
	copy(b[fvOffFileSystemGUID:], SystemNVDataFVGUID[:])
	le := binary.LittleEndian
	le.PutUint64(b[fvOffLength:], uint64(len(b)))
	copy(b[fvOffSignature:], fvSignature)
	le.PutUint32(b[fvOffSignature+4:], 0x0004feff) // attributes, as OVMF's
	le.PutUint16(b[fvOffHeaderLength:], smallFVHeader)
	le.PutUint16(b[fvOffHeaderLength+2:], 0) // checksum, below
	le.PutUint16(b[fvOffHeaderLength+4:], 0) // extended header offset
	b[fvOffRevision-1] = 0
	b[fvOffRevision] = fvRevision
	le.PutUint32(b[fvOffBlockMap:], smallBlocks)
	le.PutUint32(b[fvOffBlockMap+4:], smallBlockSize)
	le.PutUint64(b[fvOffBlockMap+8:], 0)
	fixChecksum(b)
	s := b[smallFVHeader:]
	copy(s, AuthenticatedVariableStoreGUID[:])
	le.PutUint32(s[storeOffSize:], smallStoreBlocks*smallBlockSize-smallFVHeader)
	s[storeOffFormat] = storeFormatted
	s[storeOffState] = storeHealthy
	le.PutUint16(s[22:], 0)
	le.PutUint32(s[24:], 0)
	return b
}

// fixChecksum sets the volume header's checksum so that its words sum to 0.
func fixChecksum(b []byte) {
	le := binary.LittleEndian
	n := int(le.Uint16(b[fvOffHeaderLength:]))
	le.PutUint16(b[fvOffHeaderLength+2:], 0)
	var sum uint16
	for i := 0; i < n; i += 2 {
		sum += le.Uint16(b[i:])
	}
	le.PutUint16(b[fvOffHeaderLength+2:], -sum)
}

func mustParse(t testing.TB, b []byte) *Store {
	t.Helper()
	s, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
