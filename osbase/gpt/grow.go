package gpt

import (
	"fmt"
)

// GrowPartition extends partition number n (Partitions[n-1]) into the free
// space after it, up to the next partition or the end of the usable space,
// so that its end is at a multiple of alignment bytes (DefaultAlignment if
// zero) like the partitions AddPartition makes. It reports whether the
// partition changed: it does not if it already ends within one alignment
// unit of what it can reach.
//
// A disk that grew, such as the image of a node written to a larger disk,
// reads back with its DiskSize (see Read), so that growing its last
// partition and writing the table moves the backup table to the new end of
// the disk.
func (t *Table) GrowPartition(n int, alignment int64) (bool, error) {
	grown, err := t.growPartition(n, alignment)
	if err != nil {
		return false, fmt.Errorf("gpt: growing partition %d: %w", n, err)
	}
	return grown, nil
}

func (t *Table) growPartition(n int, alignment int64) (bool, error) {
	g, err := t.geometry()
	if err != nil {
		return false, err
	}
	if n < 1 || n > len(t.Partitions) || t.Partitions[n-1] == nil {
		return false, fmt.Errorf("the table has no partition %d", n)
	}
	if alignment == 0 {
		alignment = DefaultAlignment
	}
	if alignment < 0 || alignment%g.blockSize != 0 {
		return false, fmt.Errorf("alignment %d is not a positive multiple of the block size %d", alignment, g.blockSize)
	}
	p := t.Partitions[n-1]
	if p.FirstLBA > p.LastLBA || p.LastLBA > g.lastUsable() {
		return false, fmt.Errorf("its blocks %d-%d are not within the usable blocks %d-%d", p.FirstLBA, p.LastLBA, g.firstUsable(), g.lastUsable())
	}
	// The limit is the last block before whatever comes next.
	limit := g.lastUsable()
	for i, q := range t.Partitions {
		if q == nil || i == n-1 {
			continue
		}
		if q.FirstLBA <= p.LastLBA && q.LastLBA >= p.FirstLBA {
			return false, fmt.Errorf("it overlaps partition %d", i+1)
		}
		if q.FirstLBA > p.LastLBA && q.FirstLBA-1 < limit {
			limit = q.FirstLBA - 1
		}
	}
	align := uint64(alignment / g.blockSize)
	end := (limit+1)/align*align - 1
	if (limit+1)/align*align == 0 || end <= p.LastLBA {
		return false, nil
	}
	p.LastLBA = end
	return true, nil
}
