package gpt

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// MaxEntryBytes is the largest partition entry array Read accepts, in
// bytes: 8192 entries of 128 bytes. Tables written by any common tool have
// 16 KiB; the limit keeps a corrupt entry count from costing gigabytes.
const MaxEntryBytes = 1 << 20

// Health is what Read found wrong with a table it could still use.
type Health struct {
	// Primary is why the primary table, at the start of the disk, is
	// unusable, or nil. If it is set, the table came from the backup.
	Primary error
	// Backup is why the backup table, at the end of the disk, is unusable
	// or differs from the primary, or nil. It is only checked when the
	// primary is usable.
	Backup error
}

// Read reads the partition table of the disk r of size bytes, detecting a
// block size of 512 or 4096 bytes from where the header signature is. It
// uses the primary table if it is valid and the backup otherwise; Health
// says what was wrong with either. The returned table's DiskSize is size
// rounded down to whole blocks, so writing it back puts the backup at the
// end of the disk, even if the disk has grown since the table was written.
func Read(r io.ReaderAt, size int64) (*Table, Health, error) {
	d := disk{r: r}
	var err error
	if d.blockSize, err = detectBlockSize(r, size); err != nil {
		return nil, Health{}, fmt.Errorf("gpt: %w", err)
	}
	d.blocks = uint64(size / d.blockSize)
	mbr, err := d.read(0, uint64(d.blockSize))
	if err != nil {
		return nil, Health{}, fmt.Errorf("gpt: reading block 0: %w", err)
	}

	var health Health
	used, err := d.readCopy(1, true)
	if err == nil {
		health.Backup = d.checkBackup(used)
	} else {
		health.Primary = err
		if used, err = d.readCopy(d.blocks-1, false); err != nil {
			return nil, Health{}, fmt.Errorf("gpt: no usable table: %w; %w", health.Primary, err)
		}
	}
	return &Table{
		DiskGUID:   used.hdr.diskGUID,
		BlockSize:  d.blockSize,
		DiskSize:   int64(d.blocks) * d.blockSize,
		BootCode:   parseBootCode(mbr),
		Partitions: used.parts,
	}, health, nil
}

// detectBlockSize returns the block size for which a header signature is
// at block 1 or at the last block of the disk.
func detectBlockSize(r io.ReaderAt, size int64) (int64, error) {
	for _, bs := range []int64{512, 4096} {
		if size < 2*bs {
			continue
		}
		d := disk{r: r, blockSize: bs}
		for _, lba := range []uint64{1, uint64(size/bs - 1)} {
			sig, err := d.read(lba*uint64(bs), uint64(len(headerSignature)))
			if err != nil {
				return 0, fmt.Errorf("looking for a header at block %d of %d bytes: %w", lba, bs, err)
			}
			if string(sig) == headerSignature {
				return bs, nil
			}
		}
	}
	return 0, fmt.Errorf("no GPT header signature at block 1 or the last block of the %d-byte disk, for 512 or 4096-byte blocks", size)
}

// disk reads blocks of a disk with a known block size.
type disk struct {
	r         io.ReaderAt
	blockSize int64
	blocks    uint64
}

// read returns n bytes at offset off.
func (d disk) read(off, n uint64) ([]byte, error) {
	b := make([]byte, n)
	got, err := d.r.ReadAt(b, int64(off))
	if got == len(b) {
		return b, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return nil, fmt.Errorf("reading %d bytes at offset %d: %w", n, off, err)
}

// tableCopy is the primary or the backup copy of a table.
type tableCopy struct {
	hdr *header
	// entries is the raw entry array, to compare the copies.
	entries []byte
	parts   []*Partition
}

// readCopy reads and checks the header at block lba and its entries.
func (d disk) readCopy(lba uint64, primary bool) (*tableCopy, error) {
	what := "backup"
	if primary {
		what = "primary"
	}
	c, err := d.readCopyAt(lba, primary)
	if err != nil {
		return nil, fmt.Errorf("%s table at block %d: %w", what, lba, err)
	}
	return c, nil
}

func (d disk) readCopyAt(lba uint64, primary bool) (*tableCopy, error) {
	b, err := d.read(lba*uint64(d.blockSize), uint64(d.blockSize))
	if err != nil {
		return nil, err
	}
	h, err := parseHeader(b)
	if err != nil {
		return nil, err
	}
	if err := d.checkHeader(h, lba, primary); err != nil {
		return nil, err
	}
	arrayBytes := uint64(h.entryCount) * uint64(h.entrySize)
	entries, err := d.read(h.entriesLBA*uint64(d.blockSize), arrayBytes)
	if err != nil {
		return nil, fmt.Errorf("partition entries: %w", err)
	}
	if sum := crc32.ChecksumIEEE(entries); sum != h.entriesCRC {
		return nil, fmt.Errorf("partition entries CRC32 is %#08x, but the header says %#08x", sum, h.entriesCRC)
	}
	var parts []*Partition
	for i := range h.entryCount {
		if p := parseEntry(entries[uint64(i)*uint64(h.entrySize):]); p != nil {
			parts = append(parts, make([]*Partition, int(i)-len(parts))...)
			parts = append(parts, p)
		}
	}
	if err := checkPartitions(parts, h.firstUsable, h.lastUsable); err != nil {
		return nil, err
	}
	return &tableCopy{hdr: h, entries: entries, parts: parts}, nil
}

// checkHeader checks that the fields of h, read at block lba, describe a
// table that fits the disk: the usable blocks between the headers, and the
// entries of a bounded size between the header and the usable blocks.
func (d disk) checkHeader(h *header, lba uint64, primary bool) error {
	if h.myLBA != lba {
		return fmt.Errorf("the header says it is at block %d", h.myLBA)
	}
	backupLBA := lba
	if primary {
		backupLBA = h.alternateLBA
		if backupLBA >= d.blocks {
			return fmt.Errorf("the backup header block %d is beyond the disk's last block %d", backupLBA, d.blocks-1)
		}
	} else if h.alternateLBA != 1 {
		return fmt.Errorf("the primary header block is %d, not 1", h.alternateLBA)
	}
	if h.firstUsable < 2 || h.firstUsable > h.lastUsable || h.lastUsable >= backupLBA {
		return fmt.Errorf("the usable blocks %d-%d are not between the primary header (block 1) and the backup header (block %d)", h.firstUsable, h.lastUsable, backupLBA)
	}

	if h.entrySize < entrySize || h.entrySize&(h.entrySize-1) != 0 {
		return fmt.Errorf("partition entry size %d is not a power of two of at least %d", h.entrySize, entrySize)
	}
	if h.entryCount == 0 {
		return errors.New("no partition entries")
	}
	arrayBytes := uint64(h.entryCount) * uint64(h.entrySize)
	if arrayBytes > MaxEntryBytes {
		return fmt.Errorf("%d partition entries of %d bytes are more than the %d bytes accepted", h.entryCount, h.entrySize, MaxEntryBytes)
	}
	arrayBlocks := (arrayBytes + uint64(d.blockSize) - 1) / uint64(d.blockSize)
	// The entries lie between the header and the usable blocks: after
	// the primary header, or before the backup one.
	lo, hi := uint64(2), h.firstUsable
	if !primary {
		lo, hi = h.lastUsable+1, lba
	}
	if h.entriesLBA < lo || h.entriesLBA > hi || hi-h.entriesLBA < arrayBlocks {
		return fmt.Errorf("the partition entries (%d blocks from block %d) are not within blocks %d-%d, between the header and the usable blocks", arrayBlocks, h.entriesLBA, lo, hi-1)
	}
	return nil
}

// checkBackup reads the backup copy the primary points to and tells how it
// is unusable or differs from the primary, or returns nil.
func (d disk) checkBackup(primary *tableCopy) error {
	backup, err := d.readCopy(primary.hdr.alternateLBA, false)
	if err != nil {
		return err
	}
	p, b := primary.hdr, backup.hdr
	switch {
	case b.diskGUID != p.diskGUID:
		return fmt.Errorf("the backup's disk GUID %v differs from the primary's %v", b.diskGUID, p.diskGUID)
	case b.firstUsable != p.firstUsable || b.lastUsable != p.lastUsable:
		return fmt.Errorf("the backup's usable blocks %d-%d differ from the primary's %d-%d", b.firstUsable, b.lastUsable, p.firstUsable, p.lastUsable)
	case b.entrySize != p.entrySize || !bytes.Equal(backup.entries, primary.entries):
		return errors.New("the backup's partition entries differ from the primary's")
	case p.alternateLBA != d.blocks-1:
		return fmt.Errorf("the backup table is at block %d, not at the end of the disk (block %d): the disk has grown since the table was written", p.alternateLBA, d.blocks-1)
	}
	return nil
}
