package fat32

import (
	"fmt"
	"math"
)

const (
	// firstCluster is the number of the first data cluster; FAT entries 0
	// and 1 hold the media type and flags.
	firstCluster = 2
	// minClusters is the fewest clusters a FAT32 filesystem has: with
	// fewer, readers take it for FAT16 or FAT12.
	minClusters = 65525
	// maxClusters is the most clusters FAT32 can address: cluster numbers
	// are 28 bits, and the highest ones mean bad cluster and end of chain.
	maxClusters = 0x0ffffff5 - firstCluster
	// minReserved is the number of reserved sectors before the FATs, as
	// Microsoft's tools use for FAT32. More are added to align the data
	// area to clusters.
	minReserved = 32
	numFATs     = 2
	fatEntry    = 4
)

// layout is where the parts of a filesystem are, in sectors.
type layout struct {
	sectorSize        int64
	sectorsPerCluster int64
	totalSectors      int64
	reservedSectors   int64
	// fatSectors is the size of one FAT.
	fatSectors int64
	// clusters is the number of data clusters.
	clusters int64
}

// newLayout lays out a filesystem of totalSectors sectors with as many
// clusters as fit, and the smallest FATs that describe them. The data area
// starts at a multiple of the cluster size.
//
// With FATs of f sectors, there is room for data(f) clusters, and the FATs
// can describe capacity(f) of them. data falls as f grows, capacity rises,
// so a binary search finds the smallest f with capacity(f) >= data(f).
// That gives data(f) clusters; FATs one sector smaller, filled up, may
// give as many or more, leaving the rest unused. Taking the better of both makes the
// number of clusters grow with totalSectors, never shrink.
func newLayout(sectorSize, sectorsPerCluster, totalSectors int64) layout {
	l := layout{sectorSize: sectorSize, sectorsPerCluster: sectorsPerCluster, totalSectors: totalSectors}
	capacity := func(f int64) int64 { return f*sectorSize/fatEntry - firstCluster }
	reserved := func(f int64) int64 { return roundUp(minReserved+numFATs*f, sectorsPerCluster) - numFATs*f }
	data := func(f int64) int64 {
		return max(0, (totalSectors-reserved(f)-numFATs*f)/sectorsPerCluster)
	}
	lo, hi := int64(1), roundUp((totalSectors/sectorsPerCluster+firstCluster)*fatEntry, sectorSize)/sectorSize
	for lo < hi {
		if mid := (lo + hi) / 2; capacity(mid) >= data(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	l.fatSectors, l.clusters = lo, data(lo)
	if lo > 1 && capacity(lo-1) >= l.clusters {
		l.fatSectors, l.clusters = lo-1, capacity(lo-1)
	}
	l.reservedSectors = reserved(l.fatSectors)
	return l
}

// minLayout is the smallest layout with sectorsPerCluster that has
// clusters data clusters, or minClusters if that is more. No smaller
// filesystem has as many: its FATs cannot be smaller, nor the reserved
// sectors, which only align the data area.
func minLayout(sectorSize, sectorsPerCluster, clusters int64) layout {
	clusters = max(clusters, minClusters)
	fatSectors := roundUp((clusters+firstCluster)*fatEntry, sectorSize) / sectorSize
	total := roundUp(minReserved+numFATs*fatSectors, sectorsPerCluster) + clusters*sectorsPerCluster
	return newLayout(sectorSize, sectorsPerCluster, total)
}

// check tells why l cannot hold a FAT32 filesystem with needed clusters
// in use, or returns nil.
func (l layout) check(needed int64) error {
	switch {
	case l.totalSectors > math.MaxUint32:
		return fmt.Errorf("%d sectors are more than FAT32 can count", l.totalSectors)
	case l.clusters < minClusters:
		return fmt.Errorf("%d clusters are fewer than the %d of FAT32", l.clusters, minClusters)
	case l.clusters > maxClusters:
		return fmt.Errorf("%d clusters are more than the %d of FAT32", l.clusters, maxClusters)
	case needed > l.clusters:
		return fmt.Errorf("the tree needs %d clusters, but there are %d", needed, l.clusters)
	}
	return nil
}

func (l layout) clusterSize() int64 { return l.sectorsPerCluster * l.sectorSize }

// fatOffset is the byte offset of FAT i (from 0).
func (l layout) fatOffset(i int) int64 {
	return (l.reservedSectors + int64(i)*l.fatSectors) * l.sectorSize
}

// clusterOffset is the byte offset of data cluster c.
func (l layout) clusterOffset(c uint32) int64 {
	return l.fatOffset(numFATs) + int64(c-firstCluster)*l.clusterSize()
}

// clusterSizes returns the sectors per cluster to try for a filesystem of
// totalSectors, best first: the cluster size Microsoft's tools choose for
// FAT32 volumes of that size, then smaller ones (more clusters, smaller
// slack after each file), then larger ones (smaller FATs). A fixed
// SectorsPerCluster is the only one to try.
func (o *options) clusterSizes(totalSectors int64) []int64 {
	if o.SectorsPerCluster != 0 {
		return []int64{o.SectorsPerCluster}
	}
	preferred := int64(32 << 10)
	for _, s := range []struct{ volume, cluster int64 }{
		{260 << 20, 512},
		{8 << 30, 4 << 10},
		{16 << 30, 8 << 10},
		{32 << 30, 16 << 10},
	} {
		if totalSectors*o.BlockSize <= s.volume {
			preferred = s.cluster
			break
		}
	}
	preferred = max(preferred/o.BlockSize, 1)
	sizes := []int64{preferred}
	for spc := preferred / 2; spc >= 1; spc /= 2 {
		sizes = append(sizes, spc)
	}
	for spc := preferred * 2; spc*o.BlockSize <= maxClusterSize; spc *= 2 {
		sizes = append(sizes, spc)
	}
	return sizes
}

// chooseLayout returns the layout of a filesystem of o.BlockCount sectors
// for p, with the first cluster size that works.
func chooseLayout(p *plan, o *options) (layout, error) {
	if o.BlockCount <= 0 || o.BlockCount > math.MaxUint32 {
		return layout{}, fmt.Errorf("block count %d is not between 1 and %d, the most FAT32 can count", o.BlockCount, uint32(math.MaxUint32))
	}
	var firstErr error
	for _, spc := range o.clusterSizes(o.BlockCount) {
		l := newLayout(o.BlockSize, spc, o.BlockCount)
		err := l.check(p.clusters(l.clusterSize()))
		if err == nil {
			return l, nil
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("with %d-byte clusters: %w", l.clusterSize(), err)
		}
	}
	size := o.BlockCount * o.BlockSize
	if min, err := minSize(p, o); err == nil && min > size {
		return layout{}, fmt.Errorf("%d bytes are too small for the tree, which needs at least %d bytes", size, min)
	}
	return layout{}, fmt.Errorf("no cluster size fits %d bytes (%d sectors): %w", size, o.BlockCount, firstErr)
}

// minSize is the smallest size in bytes of a filesystem holding p.
func minSize(p *plan, o *options) (int64, error) {
	var best int64
	var firstErr error
	for _, spc := range o.clusterSizes(0) {
		l := minLayout(o.BlockSize, spc, p.clusters(spc*o.BlockSize))
		if err := l.check(p.clusters(l.clusterSize())); err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("with %d-byte clusters: %w", l.clusterSize(), err)
			}
			continue
		}
		if size := l.totalSectors * l.sectorSize; best == 0 || size < best {
			best = size
		}
	}
	if best == 0 {
		return 0, firstErr
	}
	return best, nil
}

func roundUp(n, multiple int64) int64 {
	return (n + multiple - 1) / multiple * multiple
}
