package gpt

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestAddPartition(t *testing.T) {
	type add struct {
		size, alignment int64
		// first and last are the expected block range, or err the error.
		first, last uint64
		err         string
	}
	const mib = 1 << 20
	for _, tc := range []struct {
		name      string
		blockSize int64
		diskSize  int64
		adds      []add
	}{
		{"node layout, 512", 512, 1 << 30, []add{
			{size: 128 * mib, first: 2048, last: 264191},
			{size: 256 * mib, first: 264192, last: 788479},
			{size: -1, first: 788480, last: 2095103}, // the last full MiB before block 2097118
		}},
		{"node layout, 4096", 4096, 1 << 30, []add{
			{size: 128 * mib, first: 256, last: 33023},
			{size: -1, first: 33024, last: 261887},
		}},
		{"sizes round up to blocks", 512, 64 * mib, []add{
			{size: 1, first: 2048, last: 2048},
			{size: 513, first: 4096, last: 4097},
		}},
		{"alignments", 512, 64 * mib, []add{
			{size: 512, alignment: 512, first: 34, last: 34},
			{size: 512, alignment: 4096, first: 40, last: 40},
			{size: -1, alignment: 512, first: 41, last: 131038}, // the last usable block
		}},
		{"does not fit", 512, 64 * mib, []add{
			{size: 62 * mib, first: 2048, last: 129023},
			{size: mib, err: "1048576 bytes do not fit into the 1031680 bytes free from block 129024 on"},
			{size: -1, err: "less than the alignment of 1048576 bytes is left"},
			{size: 512, alignment: 512, first: 129024, last: 129024},
			{size: -1, alignment: 512, first: 129025, last: 131038},
			{size: 512, alignment: 512, err: "no space after partition"},
		}},
		{"bad arguments", 512, 64 * mib, []add{
			{size: 0, err: "size 0 is neither positive nor -1"},
			{size: -2, err: "size -2 is neither positive nor -1"},
			{size: mib, alignment: 1000, err: "alignment 1000 is not a positive multiple of the block size 512"},
			{size: mib, alignment: -512, err: "alignment -512 is not"},
		}},
		{"bad disk", 1024, 64 * mib, []add{{size: mib, err: "block size 1024 is neither 512 nor 4096"}}},
		{"tiny disk", 512, 33 * 1024, []add{{size: mib, err: "disk size 33792 is less than the 34816 bytes"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tbl := &Table{DiskGUID: DerivedGUID("test", "disk"), BlockSize: tc.blockSize, DiskSize: tc.diskSize}
			for i, a := range tc.adds {
				p := &Partition{Type: TypeMetropolisData, ID: DerivedGUID("test", fmt.Sprint(i)), Name: fmt.Sprint(i)}
				err := tbl.AddPartition(p, a.size, a.alignment)
				switch {
				case a.err != "":
					if err == nil || !strings.Contains(err.Error(), a.err) {
						t.Errorf("add %d: %v, want error containing %q", i, err, a.err)
					}
				case err != nil:
					t.Errorf("add %d: %v", i, err)
				case p.FirstLBA != a.first || p.LastLBA != a.last:
					t.Errorf("add %d: blocks %d-%d, want %d-%d", i, p.FirstLBA, p.LastLBA, a.first, a.last)
				}
			}
			// Whatever was added can be written.
			if tc.diskSize <= 64*mib && tbl.Partitions != nil {
				writeMem(t, tbl)
			}
		})
	}
}

func TestAddPartitionSlots(t *testing.T) {
	tbl := &Table{DiskGUID: DerivedGUID("test", "disk"), DiskSize: 1 << 30}
	add := func(name string) error {
		return tbl.AddPartition(&Partition{Type: TypeMetropolisData, ID: DerivedGUID("test", name), Name: name}, 4096, 4096)
	}
	for i := range MaxPartitions {
		if err := add(fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := add("too many"); err == nil || !strings.Contains(err.Error(), `adding partition "too many": the table already has 128 partitions`) {
		t.Errorf("adding partition 129: %v", err)
	}
	tbl.Partitions[4] = nil
	if err := add("reused"); err != nil || tbl.Partitions[4].Name != "reused" {
		t.Errorf("adding a partition after freeing slot 5: %v, slot 5 holds %+v", err, tbl.Partitions[4])
	}
	for _, p := range []*Partition{
		{Type: ZeroGUID, Name: "zero"},
		{Type: TypeEFISystem, Name: strings.Repeat("x", 37)},
	} {
		if err := tbl.AddPartition(p, 4096, 0); err == nil {
			t.Errorf("adding %+v succeeded", p)
		}
	}
}

// noWrites fails the test on every write.
type noWrites struct{ t *testing.T }

func (w noWrites) WriteAt(b []byte, off int64) (int, error) {
	w.t.Errorf("unexpected write of %d bytes at %d", len(b), off)
	return len(b), nil
}

func TestWriteInvalid(t *testing.T) {
	part := func(first, last uint64, id string) *Partition {
		return &Partition{Type: TypeEFISystem, ID: DerivedGUID("test", id), Name: id, FirstLBA: first, LastLBA: last}
	}
	for _, tc := range []struct {
		name   string
		change func(*Table)
		want   string
	}{
		{"zero disk GUID", func(t *Table) { t.DiskGUID = ZeroGUID }, "the disk GUID is the zero GUID"},
		{"odd disk size", func(t *Table) { t.DiskSize++ }, "is not a multiple of the block size 512"},
		{"negative disk size", func(t *Table) { t.DiskSize = -512 }, "disk size -512 is less than"},
		{"boot code", func(t *Table) { t.BootCode = make([]byte, 441) }, "441 bytes of boot code"},
		{"too many slots", func(t *Table) { t.Partitions = make([]*Partition, 129) }, "partition 129 is beyond the 128 entries"},
		{"zero type", func(t *Table) { t.Partitions[0].Type = ZeroGUID }, "partition 1 has the zero type GUID"},
		{"zero ID", func(t *Table) { t.Partitions[1].ID = ZeroGUID }, "partition 2 has the zero GUID as its ID"},
		{"same IDs", func(t *Table) { t.Partitions[1].ID = t.Partitions[0].ID }, "partitions 1 and 2 have the same ID"},
		{"reversed", func(t *Table) { t.Partitions[0] = part(100, 99, "r") }, "partition 1 starts at block 100, after its last block 99"},
		{"before usable", func(t *Table) { t.Partitions[0] = part(33, 40, "b") }, "partition 1 (blocks 33-40) is outside the usable blocks 34-131038"},
		{"after usable", func(t *Table) { t.Partitions[1] = part(5000, 131039, "a") }, "partition 2 (blocks 5000-131039) is outside"},
		{"overlap", func(t *Table) { t.Partitions[1] = part(4095, 5000, "o") }, "partitions 1 (blocks 2048-4095) and 2 (blocks 4095-5000) overlap"},
		{"name", func(t *Table) { t.Partitions[0].Name = strings.Repeat("☃", 37) }, "partition 1: name"},
		{"name with NUL", func(t *Table) { t.Partitions[0].Name = "a\x00b" }, "contains NUL"},
		{"name not UTF-8", func(t *Table) { t.Partitions[0].Name = "\xff" }, "not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tbl := &Table{DiskGUID: DerivedGUID("test", "disk"), DiskSize: 64 << 20}
			tbl.Partitions = []*Partition{part(2048, 4095, "1"), part(4096, 8191, "2")}
			tc.change(tbl)
			if err := tbl.Write(noWrites{t}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Write = %v, want error containing %q", err, tc.want)
			}
		})
	}
}

// failingDisk fails every write.
type failingDisk struct{}

var errDisk = errors.New("I/O error")

func (failingDisk) WriteAt([]byte, int64) (int, error) { return 0, errDisk }

func TestWriteFails(t *testing.T) {
	err := nodeTable(t, 512, 1<<30).Write(failingDisk{})
	if !errors.Is(err, errDisk) || !strings.Contains(err.Error(), "gpt: writing protective MBR") {
		t.Errorf("Write = %v, want the disk's error with context", err)
	}
}

// TestRoundTrip writes tables and reads them back.
func TestRoundTrip(t *testing.T) {
	unicode := &Table{DiskGUID: DerivedGUID("test", "unicode"), BlockSize: 512, DiskSize: 64 << 20,
		BootCode: []byte{0xfa, 0xeb, 0xfe},
		Partitions: []*Partition{
			nil,
			{Type: TypeEFISystem, ID: DerivedGUID("test", "a"), Name: "😀" + strings.Repeat("x", MaxNameLen-2), FirstLBA: 34, LastLBA: 34, Attributes: 1<<63 | 1<<2 | 1},
			nil,
			{Type: TypeMetropolisData, ID: DerivedGUID("test", "b"), FirstLBA: 35, LastLBA: 131038},
		},
	}
	for _, tbl := range []*Table{nodeTable(t, 512, 1<<30), nodeTable(t, 4096, 1<<30), unicode} {
		d := writeMem(t, tbl)
		got, health, err := Read(d, d.size)
		if err != nil {
			t.Fatal(err)
		}
		if health.Primary != nil || health.Backup != nil {
			t.Errorf("Read reports %+v", health)
		}
		want := *tbl
		if want.BootCode != nil {
			// Read returns all of the MBR's boot code area.
			want.BootCode = append(want.BootCode, make([]byte, MaxBootCodeSize-len(want.BootCode))...)
		}
		if !reflect.DeepEqual(got, &want) {
			t.Errorf("Read gives\n%s\nwant\n%s", dump(got), dump(&want))
		}
		if again := writeMem(t, got); !reflect.DeepEqual(again, d) {
			t.Error("writing the table read gives a different disk")
		}
	}
}
