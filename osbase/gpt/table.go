package gpt

import (
	"errors"
	"fmt"
)

const (
	// MaxPartitions is the number of partition entries Write emits, the
	// minimum the specification requires and what every tool uses.
	MaxPartitions = 128
	// DefaultAlignment is where AddPartition starts partitions when given
	// no alignment: at multiples of 1 MiB, which suits every block size,
	// erase block and RAID stripe in common use.
	DefaultAlignment = 1 << 20
)

// Partition is one entry of a partition table.
type Partition struct {
	// Type says what the partition holds, such as TypeEFISystem. The zero
	// GUID is not allowed: it marks unused entries on disk.
	Type GUID
	// ID is the partition's unique GUID, Linux's PARTUUID.
	ID GUID
	// Name is the partition's label, Linux's PARTLABEL, of at most
	// MaxNameLen UTF-16 code units.
	Name string
	// FirstLBA and LastLBA are the first and last block of the partition,
	// both included.
	FirstLBA, LastLBA uint64
	// Attributes are the attribute bits: 0 required by the platform,
	// 1 no block I/O protocol, 2 legacy BIOS bootable, 48-63 defined by
	// the partition type.
	Attributes uint64
}

// Table is a GUID partition table and the disk geometry it is laid out for.
type Table struct {
	// DiskGUID identifies the disk. It must not be the zero GUID.
	DiskGUID GUID
	// BlockSize is the disk's logical block size in bytes, 512 or 4096.
	// Zero means 512.
	BlockSize int64
	// DiskSize is the size of the disk in bytes, a multiple of BlockSize.
	// The backup table goes into its last blocks.
	DiskSize int64
	// BootCode is x86 code for BIOS boot, stored at the start of the
	// protective MBR: at most MaxBootCodeSize bytes. UEFI ignores it.
	BootCode []byte
	// Partitions holds partition N at index N-1; nil entries are unused
	// slots. It has at most MaxPartitions entries.
	Partitions []*Partition
}

// geometry is where a table's parts go on a disk, in blocks.
type geometry struct {
	blockSize   int64
	blocks      uint64
	entryBlocks uint64
}

// firstUsable is the first block after the primary entries.
func (g geometry) firstUsable() uint64 { return 2 + g.entryBlocks }

// lastUsable is the last block before the backup entries.
func (g geometry) lastUsable() uint64 { return g.blocks - 2 - g.entryBlocks }

// geometry checks the table's block and disk size and returns its layout.
func (t *Table) geometry() (geometry, error) {
	bs := t.BlockSize
	if bs == 0 {
		bs = 512
	}
	if bs != 512 && bs != 4096 {
		return geometry{}, fmt.Errorf("block size %d is neither 512 nor 4096", t.BlockSize)
	}
	if t.DiskSize%bs != 0 {
		return geometry{}, fmt.Errorf("disk size %d is not a multiple of the block size %d", t.DiskSize, bs)
	}
	g := geometry{
		blockSize:   bs,
		blocks:      uint64(t.DiskSize / bs),
		entryBlocks: uint64((MaxPartitions*entrySize + bs - 1) / bs),
	}
	// The MBR, two headers, two entry arrays and one usable block.
	if minBlocks := 4 + 2*g.entryBlocks; t.DiskSize < 0 || g.blocks < minBlocks {
		return geometry{}, fmt.Errorf("disk size %d is less than the %d bytes a partition table needs", t.DiskSize, minBlocks*uint64(bs))
	}
	return g, nil
}

// AddPartition sets p's block range and puts it into the first unused slot
// of the table. The partition starts at the first multiple of alignment
// bytes (DefaultAlignment if zero) after every existing partition, and is
// size bytes long, rounded up to whole blocks, or if size is -1 reaches to
// the last alignment boundary before the end of the usable space.
func (t *Table) AddPartition(p *Partition, size, alignment int64) error {
	if err := t.addPartition(p, size, alignment); err != nil {
		return fmt.Errorf("gpt: adding partition %q: %w", p.Name, err)
	}
	return nil
}

func (t *Table) addPartition(p *Partition, size, alignment int64) error {
	g, err := t.geometry()
	if err != nil {
		return err
	}
	if p.Type == ZeroGUID {
		return errors.New("the zero type GUID marks unused entries")
	}
	if err := checkName(p.Name); err != nil {
		return err
	}
	if alignment == 0 {
		alignment = DefaultAlignment
	}
	if alignment < 0 || alignment%g.blockSize != 0 {
		return fmt.Errorf("alignment %d is not a positive multiple of the block size %d", alignment, g.blockSize)
	}
	if size <= 0 && size != -1 {
		return fmt.Errorf("size %d is neither positive nor -1 (the rest of the disk)", size)
	}
	slot := len(t.Partitions)
	for i, q := range t.Partitions {
		if q == nil {
			slot = i
			break
		}
	}
	if slot >= MaxPartitions {
		return fmt.Errorf("the table already has %d partitions", MaxPartitions)
	}

	last := g.lastUsable()
	start := g.firstUsable()
	for _, q := range t.Partitions {
		if q != nil && q.LastLBA >= start {
			if q.LastLBA >= last {
				return fmt.Errorf("no space after partition %q, which ends at the last usable block %d", q.Name, last)
			}
			start = q.LastLBA + 1
		}
	}
	align := uint64(alignment / g.blockSize)
	start = (start + align - 1) / align * align
	if start > last {
		return fmt.Errorf("no space left on the disk after aligning to %d bytes", alignment)
	}
	end := last
	if size == -1 {
		// The rest of the disk ends at an alignment boundary too, so its
		// size is a multiple of the alignment, as dm-crypt and
		// dm-integrity with 4 KiB sectors need on 512-byte disks.
		boundary := (last + 1) / align * align
		if boundary <= start {
			return fmt.Errorf("less than the alignment of %d bytes is left on the disk", alignment)
		}
		end = boundary - 1
	} else {
		blocks := (uint64(size) + uint64(g.blockSize) - 1) / uint64(g.blockSize)
		if free := last - start + 1; blocks > free {
			return fmt.Errorf("%d bytes do not fit into the %d bytes free from block %d on", size, free*uint64(g.blockSize), start)
		}
		end = start + blocks - 1
	}
	p.FirstLBA, p.LastLBA = start, end
	if slot == len(t.Partitions) {
		t.Partitions = append(t.Partitions, p)
	} else {
		t.Partitions[slot] = p
	}
	return nil
}
