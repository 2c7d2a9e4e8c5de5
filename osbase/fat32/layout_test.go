package fat32

import (
	"fmt"
	"slices"
	"testing"

	"metropolis.dev/osbase/structfs"
)

// TestNewLayout checks the invariants of layouts for many sizes: the data
// area is aligned, the FATs describe every cluster and are as small as
// they can be, less than a cluster is left over unless the FATs are full,
// and a larger size never has fewer clusters. Sizes too small for any
// cluster only must not make it fail.
func TestNewLayout(t *testing.T) {
	var totals []int64
	for n := int64(60000); n < 70000; n += 37 {
		totals = append(totals, n)
	}
	totals = append(totals, 1, 100, 1<<20, 1<<20+1, 123456789, 1<<32-1)
	for _, ss := range []int64{512, 4096} {
		for _, spc := range []int64{1, 2, 8, 64} {
			for _, total := range totals {
				l := newLayout(ss, spc, total)
				if next := newLayout(ss, spc, total+1); next.clusters < l.clusters {
					t.Errorf("%d/%d: %d sectors have %d clusters, one more has %d", ss, spc, total, l.clusters, next.clusters)
				}
				fatFull := (l.clusters+firstCluster+1)*fatEntry > l.fatSectors*ss
				fats := numFATs * l.fatSectors
				used := l.reservedSectors + fats + l.clusters*spc
				switch {
				case (l.reservedSectors+fats)%spc != 0:
					t.Errorf("%d/%d/%d: data area at sector %d is not aligned", ss, spc, total, l.reservedSectors+fats)
				case l.reservedSectors < minReserved || l.reservedSectors >= minReserved+spc:
					t.Errorf("%d/%d/%d: %d reserved sectors", ss, spc, total, l.reservedSectors)
				case (l.clusters+firstCluster)*fatEntry > l.fatSectors*ss:
					t.Errorf("%d/%d/%d: FATs of %d sectors are too small for %d clusters", ss, spc, total, l.fatSectors, l.clusters)
				case l.clusters > 0 && (used > total || total-used >= spc && !fatFull):
					t.Errorf("%d/%d/%d: %d sectors used", ss, spc, total, used)
				}
				if l.fatSectors > 1 && (l.clusters+firstCluster)*fatEntry <= (l.fatSectors-1)*ss {
					t.Errorf("%d/%d/%d: FATs of %d sectors would do for %d clusters", ss, spc, total, l.fatSectors-1, l.clusters)
				}
			}
		}
	}
}

// TestMinLayout checks that minLayout has the clusters asked for and that
// no smaller filesystem has.
func TestMinLayout(t *testing.T) {
	for _, ss := range []int64{512, 4096} {
		for _, spc := range []int64{1, 4, 64} {
			for _, clusters := range []int64{0, minClusters, minClusters + 1, 100000, 1234567, 99999999} {
				l := minLayout(ss, spc, clusters)
				want := max(clusters, minClusters)
				if l.clusters < want {
					t.Errorf("%d/%d: minLayout(%d) has %d clusters", ss, spc, clusters, l.clusters)
				}
				if smaller := newLayout(ss, spc, l.totalSectors-1); smaller.clusters >= want {
					t.Errorf("%d/%d: %d sectors hold %d clusters too", ss, spc, l.totalSectors-1, smaller.clusters)
				}
			}
		}
	}
}

func TestClusterSizes(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		blockSize, spc, bytes int64
		want                  []int64
	}{
		{512, 0, 128 * mib, []int64{1, 2, 4, 8, 16, 32, 64}},
		{512, 0, 260 * mib, []int64{1, 2, 4, 8, 16, 32, 64}},
		{512, 0, 261 * mib, []int64{8, 4, 2, 1, 16, 32, 64}},
		{512, 0, 8 << 30, []int64{8, 4, 2, 1, 16, 32, 64}},
		{512, 0, 9 << 30, []int64{16, 8, 4, 2, 1, 32, 64}},
		{512, 0, 20 << 30, []int64{32, 16, 8, 4, 2, 1, 64}},
		{512, 0, 1 << 40, []int64{64, 32, 16, 8, 4, 2, 1}},
		{4096, 0, 300 * mib, []int64{1, 2, 4, 8}},
		{2048, 0, 300 * mib, []int64{2, 1, 4, 8, 16}},
		{512, 4, 1 << 40, []int64{4}},
	} {
		o := &options{Options: Options{BlockSize: tc.blockSize, SectorsPerCluster: tc.spc}}
		if got := o.clusterSizes(tc.bytes / tc.blockSize); !slices.Equal(got, tc.want) {
			t.Errorf("%+v: clusterSizes = %v, want %v", tc, got, tc.want)
		}
	}
}

// TestChooseSmallerClusters has a tree that does not fit a volume with the
// preferred 4 KiB clusters, as each file would take two of them, but fits
// with 2 KiB clusters.
func TestChooseSmallerClusters(t *testing.T) {
	var tree structfs.Tree
	for i := range 40000 {
		if err := tree.Place(fmt.Sprintf("/d%d/f%d", i/1000, i), structfs.File(0o644, fakeBlob(4097))); err != nil {
			t.Fatal(err)
		}
	}
	o, p, err := prepare(&tree, Options{BlockCount: 300 << 20 / 512})
	if err != nil {
		t.Fatal(err)
	}
	l, err := chooseLayout(p, o)
	if err != nil {
		t.Fatal(err)
	}
	if l.clusterSize() != 2048 {
		t.Errorf("chose %d-byte clusters, want 2048", l.clusterSize())
	}
	if o.clusterSizes(o.BlockCount)[0] != 8 {
		t.Errorf("the preferred cluster size is not 4 KiB")
	}
}
