package gpt

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Write writes the protective MBR, the primary table at the start of the
// disk and the backup table at its end (DiskSize) to w. It checks the whole
// table first and writes nothing if it is invalid. Blocks between the
// tables, where the partitions are, are not touched.
func (t *Table) Write(w io.WriterAt) error {
	g, err := t.geometry()
	if err == nil {
		err = t.check(g)
	}
	if err != nil {
		return fmt.Errorf("gpt: invalid table: %w", err)
	}

	entries := make([]byte, g.entryBlocks*uint64(g.blockSize))
	for i, p := range t.Partitions {
		if p != nil {
			marshalEntry(entries[i*entrySize:], p)
		}
	}
	primary := header{
		myLBA:        1,
		alternateLBA: g.blocks - 1,
		firstUsable:  g.firstUsable(),
		lastUsable:   g.lastUsable(),
		diskGUID:     t.DiskGUID,
		entriesLBA:   2,
		entryCount:   MaxPartitions,
		entrySize:    entrySize,
		entriesCRC:   crc32.ChecksumIEEE(entries[:MaxPartitions*entrySize]),
	}
	backup := primary
	backup.myLBA, backup.alternateLBA = primary.alternateLBA, primary.myLBA
	backup.entriesLBA = g.lastUsable() + 1

	for _, part := range []struct {
		what string
		lba  uint64
		data []byte
	}{
		{"protective MBR", 0, protectiveMBR(g, t.BootCode)},
		{"primary header", primary.myLBA, primary.marshal(g.blockSize)},
		{"primary partition entries", primary.entriesLBA, entries},
		{"backup partition entries", backup.entriesLBA, entries},
		{"backup header", backup.myLBA, backup.marshal(g.blockSize)},
	} {
		if _, err := w.WriteAt(part.data, int64(part.lba)*g.blockSize); err != nil {
			return fmt.Errorf("gpt: writing %s: %w", part.what, err)
		}
	}
	return nil
}

// check tells why the table cannot be written with geometry g, or nil.
func (t *Table) check(g geometry) error {
	if t.DiskGUID == ZeroGUID {
		return errors.New("the disk GUID is the zero GUID")
	}
	if len(t.BootCode) > MaxBootCodeSize {
		return fmt.Errorf("%d bytes of boot code, more than the %d an MBR holds", len(t.BootCode), MaxBootCodeSize)
	}
	return checkPartitions(t.Partitions, g.firstUsable(), g.lastUsable())
}
