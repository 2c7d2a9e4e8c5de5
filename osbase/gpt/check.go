package gpt

import (
	"cmp"
	"fmt"
	"slices"
)

// checkPartitions tells why parts cannot be in a table whose usable blocks
// are first to last, or returns nil. Write and Read apply the same rules, so
// every table Read returns can be written again.
func checkPartitions(parts []*Partition, first, last uint64) error {
	if len(parts) > MaxPartitions {
		return fmt.Errorf("partition %d is beyond the %d entries supported", len(parts), MaxPartitions)
	}
	ids := make(map[GUID]int)
	var used []int
	for i, p := range parts {
		if p == nil {
			continue
		}
		n := i + 1
		switch {
		case p.Type == ZeroGUID:
			return fmt.Errorf("partition %d has the zero type GUID, which marks unused entries (leave the slot nil)", n)
		case p.ID == ZeroGUID:
			return fmt.Errorf("partition %d has the zero GUID as its ID", n)
		case p.FirstLBA > p.LastLBA:
			return fmt.Errorf("partition %d starts at block %d, after its last block %d", n, p.FirstLBA, p.LastLBA)
		case p.FirstLBA < first || p.LastLBA > last:
			return fmt.Errorf("partition %d (blocks %d-%d) is outside the usable blocks %d-%d", n, p.FirstLBA, p.LastLBA, first, last)
		}
		if other, ok := ids[p.ID]; ok {
			return fmt.Errorf("partitions %d and %d have the same ID %v", other, n, p.ID)
		}
		ids[p.ID] = n
		if err := checkName(p.Name); err != nil {
			return fmt.Errorf("partition %d: %w", n, err)
		}
		used = append(used, i)
	}
	slices.SortFunc(used, func(a, b int) int { return cmp.Compare(parts[a].FirstLBA, parts[b].FirstLBA) })
	for k := 1; k < len(used); k++ {
		prev, cur := parts[used[k-1]], parts[used[k]]
		if cur.FirstLBA <= prev.LastLBA {
			return fmt.Errorf("partitions %d (blocks %d-%d) and %d (blocks %d-%d) overlap",
				used[k-1]+1, prev.FirstLBA, prev.LastLBA, used[k]+1, cur.FirstLBA, cur.LastLBA)
		}
	}
	return nil
}
