package gpt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Layout of a GPT header, UEFI specification 2.10, section 5.3.2.
const (
	headerSignature = "EFI PART"
	// headerRevision is version 1.0, the only one there is.
	headerRevision = 0x00010000
	// headerSize is the size of the header fields; the rest of the block
	// is reserved and zero.
	headerSize = 92
)

// header holds the fields of a GPT header besides its signature, revision,
// size and CRC, which marshal fills in and parseHeader checks.
type header struct {
	myLBA, alternateLBA     uint64
	firstUsable, lastUsable uint64
	diskGUID                GUID
	entriesLBA              uint64
	entryCount, entrySize   uint32
	entriesCRC              uint32
}

// marshal returns h as a block of blockSize bytes.
func (h *header) marshal(blockSize int64) []byte {
	b := make([]byte, blockSize)
	copy(b[0:8], headerSignature)
	le := binary.LittleEndian
	le.PutUint32(b[8:12], headerRevision)
	le.PutUint32(b[12:16], headerSize)
	le.PutUint64(b[24:32], h.myLBA)
	le.PutUint64(b[32:40], h.alternateLBA)
	le.PutUint64(b[40:48], h.firstUsable)
	le.PutUint64(b[48:56], h.lastUsable)
	h.diskGUID.encode(b[56:72])
	le.PutUint64(b[72:80], h.entriesLBA)
	le.PutUint32(b[80:84], h.entryCount)
	le.PutUint32(b[84:88], h.entrySize)
	le.PutUint32(b[88:92], h.entriesCRC)
	le.PutUint32(b[16:20], crc32.ChecksumIEEE(b[:headerSize]))
	return b
}

// parseHeader checks the signature, revision, size and CRC of the header in
// block b and returns its fields. Whether they make sense for the disk is
// for the caller to check.
func parseHeader(b []byte) (*header, error) {
	if string(b[0:8]) != headerSignature {
		return nil, errors.New("no GPT header signature")
	}
	le := binary.LittleEndian
	if rev := le.Uint32(b[8:12]); rev>>16 != 1 {
		return nil, fmt.Errorf("unsupported header revision %#08x", rev)
	}
	size := le.Uint32(b[12:16])
	if size < headerSize || uint64(size) > uint64(len(b)) {
		return nil, fmt.Errorf("header size %d is outside %d..%d (the block size)", size, headerSize, len(b))
	}
	stored := le.Uint32(b[16:20])
	withoutCRC := make([]byte, size)
	copy(withoutCRC, b[:size])
	clear(withoutCRC[16:20])
	if sum := crc32.ChecksumIEEE(withoutCRC); sum != stored {
		return nil, fmt.Errorf("header CRC32 is %#08x, but the header's is %#08x", stored, sum)
	}
	return &header{
		myLBA:        le.Uint64(b[24:32]),
		alternateLBA: le.Uint64(b[32:40]),
		firstUsable:  le.Uint64(b[40:48]),
		lastUsable:   le.Uint64(b[48:56]),
		diskGUID:     decodeGUID(b[56:72]),
		entriesLBA:   le.Uint64(b[72:80]),
		entryCount:   le.Uint32(b[80:84]),
		entrySize:    le.Uint32(b[84:88]),
		entriesCRC:   le.Uint32(b[88:92]),
	}, nil
}
