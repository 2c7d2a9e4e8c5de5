package gpt

import (
	"strings"
	"testing"
)

func TestGrowPartition(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name      string
		blockSize int64
		// oldSize is the disk the table was made for, newSize the one it
		// is grown on.
		oldSize, newSize int64
		wantGrown        bool
		wantLast         uint64
	}{
		{"same disk", 512, 1 << 30, 1 << 30, false, 2095103},
		{"disk doubled", 512, 1 << 30, 2 << 30, true, 4192255},
		// The backup table needs the extra space, so the partition cannot
		// reach another MiB boundary.
		{"too little more", 512, 1 << 30, 1<<30 + 16*1024, false, 2095103},
		{"half a MiB more", 512, 1 << 30, 1<<30 + 512*1024, true, 2097151},
		{"disk doubled, 4096", 4096, 1 << 30, 2 << 30, true, 524031},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := nodeTable(t, tc.blockSize, tc.oldSize)
			disk := newMemDisk(tc.newSize)
			if err := old.Write(disk); err != nil {
				t.Fatal(err)
			}
			tbl, _, err := Read(disk, tc.newSize)
			if err != nil {
				t.Fatal(err)
			}
			grown, err := tbl.GrowPartition(4, 0)
			if err != nil {
				t.Fatal(err)
			}
			p := tbl.Partitions[3]
			if grown != tc.wantGrown || p.LastLBA != tc.wantLast {
				t.Errorf("GrowPartition = %v, last block %d; want %v, %d", grown, p.LastLBA, tc.wantGrown, tc.wantLast)
			}
			if (p.LastLBA+1)*uint64(tc.blockSize)%mib != 0 {
				t.Errorf("the partition ends at block %d, not at a MiB boundary", p.LastLBA)
			}
			// The table written back reads back with a healthy backup at
			// the end of the disk, and the other partitions unchanged.
			if err := tbl.Write(disk); err != nil {
				t.Fatal(err)
			}
			again, health, err := Read(disk, tc.newSize)
			if err != nil || health.Primary != nil || health.Backup != nil {
				t.Fatalf("reading the grown table: %v, %+v", err, health)
			}
			for i := range 3 {
				if *again.Partitions[i] != *old.Partitions[i] {
					t.Errorf("partition %d changed: %+v, was %+v", i+1, again.Partitions[i], old.Partitions[i])
				}
			}
			if again.Partitions[3].LastLBA != tc.wantLast {
				t.Errorf("partition 4 reads back ending at %d, want %d", again.Partitions[3].LastLBA, tc.wantLast)
			}
		})
	}
}

func TestGrowPartitionUpToNext(t *testing.T) {
	tbl := &Table{DiskGUID: DerivedGUID("test", "disk"), DiskSize: 64 << 20}
	a := &Partition{Type: TypeEFISystem, ID: DerivedGUID("test", "a"), Name: "a"}
	b := &Partition{Type: TypeMetropolisData, ID: DerivedGUID("test", "b"), Name: "b"}
	if err := tbl.AddPartition(a, 1<<20, 0); err != nil {
		t.Fatal(err)
	}
	if err := tbl.AddPartition(b, 1<<20, 0); err != nil {
		t.Fatal(err)
	}
	// Partition a is moved away from b, which leaves a gap for it.
	b.FirstLBA, b.LastLBA = 16<<11, 17<<11-1
	grown, err := tbl.GrowPartition(1, 0)
	if err != nil || !grown || a.LastLBA != 16<<11-1 {
		t.Errorf("GrowPartition(1) = %v, %v, last block %d; want it to reach block %d, before partition 2", grown, err, a.LastLBA, 16<<11-1)
	}
}

func TestGrowPartitionErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		n         int
		alignment int64
		want      string
	}{
		{"no such partition", 5, 0, "no partition 5"},
		{"zero", 0, 0, "no partition 0"},
		{"bad alignment", 4, 1000, "alignment 1000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tbl := nodeTable(t, 512, 1<<30)
			if _, err := tbl.GrowPartition(tc.n, tc.alignment); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("GrowPartition(%d, %d) = %v, want an error containing %q", tc.n, tc.alignment, err, tc.want)
			}
		})
	}
}
