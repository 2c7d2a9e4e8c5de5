package gpt

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
)

// testDiskSize is the size of the disks of these tests: 64 MiB, where a
// table with 512-byte blocks has the usable blocks 34-131038 and its backup
// entries at block 131039.
const testDiskSize = 64 << 20

// smallTable is a table on a disk of testDiskSize bytes.
func smallTable(t *testing.T, blockSize int64) *Table {
	t.Helper()
	tbl := &Table{DiskGUID: DerivedGUID("test", "disk"), BlockSize: blockSize, DiskSize: testDiskSize}
	for _, name := range []string{"a", "b"} {
		p := &Partition{Type: TypeMetropolisData, ID: DerivedGUID("test", name), Name: name}
		if err := tbl.AddPartition(p, 1<<20, 0); err != nil {
			t.Fatal(err)
		}
	}
	return tbl
}

// TestReadDamaged damages the primary or backup table in various ways and
// checks that Read uses the other copy and reports what it found.
func TestReadDamaged(t *testing.T) {
	const bs = 512
	last := int64(testDiskSize/bs - 1)
	flip := func(off int64) func(*memDisk) {
		return func(d *memDisk) { d.at(off, 1)[0] ^= 0x01 }
	}
	for _, tc := range []struct {
		name    string
		damage  func(*memDisk)
		primary string // expected Health.Primary, or "" for nil
		backup  string // expected Health.Backup, or "" for nil
	}{
		{"primary signature", flip(bs), "primary table at block 1: no GPT header signature", ""},
		{"primary header", flip(bs + 60), "primary table at block 1: header CRC32 is", ""},
		{"primary header CRC", flip(bs + 16), "header CRC32 is", ""},
		{"primary header reserved", flip(2*bs - 1 - (bs - headerSize)), "header CRC32 is", ""},
		{"primary entries", flip(2*bs + entrySize + 40), "primary table at block 1: partition entries CRC32 is", ""},
		{"unused primary entry", flip(2*bs + 100*entrySize), "partition entries CRC32 is", ""},
		{"backup header", flip(last*bs + 60), "", "backup table at block 131071: header CRC32 is"},
		{"backup signature", flip(last * bs), "", "backup table at block 131071: no GPT header signature"},
		{"backup entries", flip((last-32)*bs + 40), "", "backup table at block 131071: partition entries CRC32 is"},
		{"backup differs", func(d *memDisk) {
			patchHeader(d, bs, uint64(last), func(h []byte) { h[56] ^= 1 })
		}, "", "the backup's disk GUID"},
		{"backup entries differ", func(d *memDisk) {
			// A valid backup describing other partitions.
			other := smallTable(t, bs)
			other.Partitions[1] = nil
			o := writeMem(t, other)
			copy(d.at(last*bs-32*bs, 33*bs), o.at(last*bs-32*bs, 33*bs))
		}, "", "the backup's partition entries differ from the primary's"},
		{"backup usable blocks differ", func(d *memDisk) {
			patchHeader(d, bs, uint64(last), func(h []byte) { binary.LittleEndian.PutUint64(h[40:], 35) })
		}, "", "the backup's usable blocks 35-131038 differ from the primary's 34-131038"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := smallTable(t, bs)
			d := writeMem(t, want)
			tc.damage(d)
			got, health, err := Read(d, d.size)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Read gives\n%s\nwant\n%s", dump(got), dump(want))
			}
			checkErr(t, "Health.Primary", health.Primary, tc.primary)
			checkErr(t, "Health.Backup", health.Backup, tc.backup)
		})
	}
}

// checkErr checks that err contains want, or is nil if want is empty.
func checkErr(t *testing.T, what string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s is %v, want nil", what, err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Errorf("%s is %v, want an error containing %q", what, err, want)
	}
}

func TestReadBothDamaged(t *testing.T) {
	for _, bs := range []int64{512, 4096} {
		d := writeMem(t, smallTable(t, bs))
		d.at(bs+60, 1)[0] ^= 1
		d.at(testDiskSize-bs+60, 1)[0] ^= 1
		_, _, err := Read(d, d.size)
		if err == nil || !strings.Contains(err.Error(), "gpt: no usable table: primary table at block 1: header CRC32") ||
			!strings.Contains(err.Error(), "; backup table at block") {
			t.Errorf("%d-byte blocks: Read = %v, want an error about both tables", bs, err)
		}
	}
}

// TestReadGrown reads a table from a disk that grew after it was written.
func TestReadGrown(t *testing.T) {
	for _, bs := range []int64{512, 4096} {
		tbl := smallTable(t, bs)
		d := writeMem(t, tbl)
		// A partial block at the end does not count.
		d.size = 2*testDiskSize + bs - 1
		got, health, err := Read(d, d.size)
		if err != nil {
			t.Fatal(err)
		}
		checkErr(t, "Health.Primary", health.Primary, "")
		checkErr(t, "Health.Backup", health.Backup, "not at the end of the disk")
		want := *tbl
		want.DiskSize = 2 * testDiskSize
		if !reflect.DeepEqual(got, &want) {
			t.Errorf("Read gives\n%s\nwant\n%s", dump(got), dump(&want))
		}
		// Writing the table moves the backup to the end and gives room
		// for partitions there.
		if err := got.AddPartition(&Partition{Type: TypeEFISystem, ID: DerivedGUID("test", "new"), Name: "new"}, -1, 0); err != nil {
			t.Fatal(err)
		}
		if err := got.Write(d); err != nil {
			t.Fatal(err)
		}
		again, health, err := Read(d, d.size)
		if err != nil || health.Primary != nil || health.Backup != nil {
			t.Fatalf("Read after rewriting = %v, %+v", err, health)
		}
		// The new partition ends 1 MiB before the end of the disk, at the
		// last MiB boundary before the backup entries.
		if p, end := again.Partitions[2], uint64((2*testDiskSize-(1<<20))/bs-1); p == nil || p.LastLBA != end {
			t.Errorf("partition filling the grown disk is %+v, want it to end at block %d", p, end)
		}
	}
}

// TestReadInvalid makes tables that have valid CRCs but fields that do not
// fit the disk, and checks that Read rejects them with the reason. The
// primary is changed; with the backup intact, the reason is in Health.
func TestReadInvalid(t *testing.T) {
	const bs = 512
	le := binary.LittleEndian
	header := func(patch func(h []byte)) func(*memDisk) {
		return func(d *memDisk) { patchHeader(d, bs, 1, patch) }
	}
	entry := func(i int, patch func(e []byte)) func(*memDisk) {
		return func(d *memDisk) {
			patchEntries(d, bs, func(entries []byte) { patch(entries[i*entrySize:]) })
		}
	}
	for _, tc := range []struct {
		name   string
		change func(*memDisk)
		want   string
	}{
		{"revision 2.0", header(func(h []byte) { le.PutUint32(h[8:], 0x00020000) }), "unsupported header revision 0x00020000"},
		{"header too small", header(func(h []byte) { le.PutUint32(h[12:], 91) }), "header size 91 is outside 92..512"},
		{"header too large", header(func(h []byte) { le.PutUint32(h[12:], 513) }), "header size 513 is outside"},
		{"wrong own LBA", header(func(h []byte) { le.PutUint64(h[24:], 7) }), "the header says it is at block 7"},
		{"backup beyond disk", header(func(h []byte) { le.PutUint64(h[32:], 1<<17) }), "the backup header block 131072 is beyond the disk's last block 131071"},
		{"backup in usable blocks", header(func(h []byte) { le.PutUint64(h[32:], 5000) }), "the usable blocks 34-131038 are not between"},
		{"usable from block 1", header(func(h []byte) { le.PutUint64(h[40:], 1) }), "the usable blocks 1-131038"},
		{"usable reversed", header(func(h []byte) { le.PutUint64(h[48:], 33) }), "the usable blocks 34-33"},
		{"usable to the end", header(func(h []byte) { le.PutUint64(h[48:], 131071) }), "the usable blocks 34-131071"},
		{"entry size 0", header(func(h []byte) { le.PutUint32(h[84:], 0) }), "partition entry size 0 is not a power of two of at least 128"},
		{"entry size 192", header(func(h []byte) { le.PutUint32(h[84:], 192) }), "partition entry size 192"},
		{"entry size 2^31", header(func(h []byte) { le.PutUint32(h[84:], 1<<31) }), "2147483648 bytes are more than the 1048576 bytes accepted"},
		{"no entries", header(func(h []byte) { le.PutUint32(h[80:], 0) }), "no partition entries"},
		{"entry count 2^32-1", header(func(h []byte) { le.PutUint32(h[80:], 1<<32-1) }), "4294967295 partition entries of 128 bytes are more than the 1048576 bytes accepted"},
		{"entries overlap usable", header(func(h []byte) { le.PutUint32(h[80:], 129) }), "the partition entries (33 blocks from block 2) are not within blocks 2-33"},
		{"entries on header", header(func(h []byte) { le.PutUint64(h[72:], 1) }), "(32 blocks from block 1)"},
		{"entries in usable", header(func(h []byte) { le.PutUint64(h[72:], 100) }), "(32 blocks from block 100)"},
		{"entries far away", header(func(h []byte) { le.PutUint64(h[72:], 1<<63) }), "(32 blocks from block 9223372036854775808)"},
		{"partition reversed", entry(0, func(e []byte) { le.PutUint64(e[40:], 2047) }), "partition 1 starts at block 2048, after its last block 2047"},
		{"partition before usable", entry(0, func(e []byte) { le.PutUint64(e[32:], 33) }), "partition 1 (blocks 33-4095) is outside the usable blocks 34-131038"},
		{"partition after usable", entry(1, func(e []byte) { le.PutUint64(e[40:], 131039) }), "partition 2 (blocks 4096-131039) is outside"},
		{"partitions overlap", entry(1, func(e []byte) { le.PutUint64(e[32:], 4095) }), "partitions 1 (blocks 2048-4095) and 2 (blocks 4095-6143) overlap"},
		{"zero ID", entry(1, func(e []byte) { clear(e[16:32]) }), "partition 2 has the zero GUID as its ID"},
		{"same IDs", entry(0, func(e []byte) { copy(e[entrySize+16:entrySize+32], e[16:32]) }), "partitions 1 and 2 have the same ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := smallTable(t, bs)
			d := writeMem(t, want)
			tc.change(d)
			got, health, err := Read(d, d.size)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			checkErr(t, "Health.Primary", health.Primary, tc.want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Read gives\n%s\nwant the backup\n%s", dump(got), dump(want))
			}
		})
	}
}

// TestReadInvalidBackup checks the rules that differ for the backup.
func TestReadInvalidBackup(t *testing.T) {
	const bs = 512
	le := binary.LittleEndian
	for _, tc := range []struct {
		name  string
		patch func(h []byte)
		want  string
	}{
		{"primary not at 1", func(h []byte) { le.PutUint64(h[32:], 2) }, "the primary header block is 2, not 1"},
		{"entries in front", func(h []byte) { le.PutUint64(h[72:], 2) }, "(32 blocks from block 2) are not within blocks 131039-131070"},
		{"entries on header", func(h []byte) { le.PutUint64(h[72:], 131040) }, "(32 blocks from block 131040)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := writeMem(t, smallTable(t, bs))
			patchHeader(d, bs, testDiskSize/bs-1, tc.patch)
			_, health, err := Read(d, d.size)
			if err != nil {
				t.Fatal(err)
			}
			checkErr(t, "Health.Backup", health.Backup, tc.want)
		})
	}
}

func TestReadNoTable(t *testing.T) {
	valid := writeMem(t, smallTable(t, 512))
	for _, tc := range []struct {
		name string
		disk []byte
		size int64
		want string
	}{
		{"empty", nil, 0, "no GPT header signature at block 1 or the last block of the 0-byte disk"},
		{"zeros", make([]byte, 1<<20), 1 << 20, "no GPT header signature"},
		{"MBR only", valid.at(0, 512), 512, "no GPT header signature"},
		{"truncated", valid.at(0, 256), testDiskSize, "looking for a header at block 1 of 512 bytes: reading 8 bytes at offset 512: unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Read(bytes.NewReader(tc.disk), tc.size)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Read = %v, want error containing %q", err, tc.want)
			}
		})
	}
}
