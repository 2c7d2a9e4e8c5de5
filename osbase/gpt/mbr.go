package gpt

import (
	"bytes"
	"encoding/binary"
)

// MaxBootCodeSize is the room for boot code in an MBR, before the disk
// signature and the four partition records.
const MaxBootCodeSize = 440

const (
	mbrSignatureOffset = 510
	mbrRecordOffset    = 446
	// mbrTypeProtective is the partition type of the one record of a
	// protective MBR, covering the whole disk so that GPT-unaware tools see
	// it as used.
	mbrTypeProtective = 0xee
)

// protectiveMBR returns block 0 of a disk of the given geometry.
func protectiveMBR(g geometry, bootCode []byte) []byte {
	b := make([]byte, g.blockSize)
	copy(b, bootCode)
	rec := b[mbrRecordOffset : mbrRecordOffset+16]
	// Not active; starts at cylinder 0, head 0, sector 2, i.e. LBA 1.
	rec[1], rec[2], rec[3] = 0x00, 0x02, 0x00
	rec[4] = mbrTypeProtective
	// The end as CHS: the largest value, as the disk is addressed by LBA.
	rec[5], rec[6], rec[7] = 0xff, 0xff, 0xff
	binary.LittleEndian.PutUint32(rec[8:12], 1)
	binary.LittleEndian.PutUint32(rec[12:16], uint32(min(g.blocks-1, 0xffffffff)))
	b[mbrSignatureOffset], b[mbrSignatureOffset+1] = 0x55, 0xaa
	return b
}

// parseBootCode returns the boot code in block 0, or nil if there is no MBR
// or no boot code (all zeros).
func parseBootCode(b []byte) []byte {
	if b[mbrSignatureOffset] != 0x55 || b[mbrSignatureOffset+1] != 0xaa {
		return nil
	}
	code := b[:MaxBootCodeSize]
	if bytes.Count(code, []byte{0}) == len(code) {
		return nil
	}
	return bytes.Clone(code)
}
