package gpt

import (
	"bytes"
	"hash/crc32"
	"reflect"
	"testing"
)

// FuzzRead feeds Read arbitrary disks. It must never panic, and whatever
// table it returns must survive being written and read again unchanged.
// The seeds are disks with valid tables, whole or damaged: the smallest
// ones Write makes, and tiny ones with four partition entries, which Read
// accepts, for the fuzzer to mutate quickly.
func FuzzRead(f *testing.F) {
	for _, bs := range []int64{512, 4096} {
		f.Add(tinyDisk(bs))
	}
	for _, bs := range []int64{512, 4096} {
		// The smallest disk a table fits on, with two partitions.
		size := (4 + 2*16384/bs + 3) * bs
		tbl := &Table{DiskGUID: DerivedGUID("fuzz", "disk"), BlockSize: bs, DiskSize: size, BootCode: []byte{0xeb, 0xfe}}
		for _, name := range []string{"a", "b"} {
			p := &Partition{Type: TypeEFISystem, ID: DerivedGUID("fuzz", name), Name: name}
			if err := tbl.AddPartition(p, bs, bs); err != nil {
				f.Fatal(err)
			}
		}
		valid := make([]byte, size)
		d := newMemDisk(size)
		if err := tbl.Write(d); err != nil {
			f.Fatal(err)
		}
		if _, err := d.ReadAt(valid, 0); err != nil {
			f.Fatal(err)
		}
		f.Add(valid)
		noPrimary := bytes.Clone(valid)
		noPrimary[bs+20] ^= 1
		f.Add(noPrimary)
		f.Add(valid[:size-bs])
	}
	f.Fuzz(func(t *testing.T, disk []byte) {
		tbl, _, err := Read(bytes.NewReader(disk), int64(len(disk)))
		if err != nil {
			return
		}
		d := newMemDisk(tbl.DiskSize)
		if err := tbl.Write(d); err != nil {
			// Tables with usable blocks other than Write's can have
			// partitions where Write puts its entries.
			return
		}
		again, health, err := Read(d, d.size)
		if err != nil || health.Primary != nil || health.Backup != nil {
			t.Fatalf("reading a table written from one read: %v, %+v", err, health)
		}
		if !reflect.DeepEqual(again, tbl) {
			t.Fatalf("table changed after writing and reading:\n%s\nwas\n%s", dump(again), dump(tbl))
		}
	})
}

// tinyDisk returns a disk of 7 blocks: the MBR, a primary header, an entry
// block with four entries, two usable blocks with one partition, the
// backup entries and header.
func tinyDisk(bs int64) []byte {
	d := make([]byte, 7*bs)
	copy(d, protectiveMBR(geometry{blockSize: bs, blocks: 7}, nil))
	entries := d[2*bs : 2*bs+4*entrySize]
	marshalEntry(entries, &Partition{Type: TypeEFISystem, ID: DerivedGUID("fuzz", "tiny"), Name: "tiny", FirstLBA: 3, LastLBA: 4})
	copy(d[5*bs:], entries)
	h := header{
		myLBA: 1, alternateLBA: 6, firstUsable: 3, lastUsable: 4,
		diskGUID: DerivedGUID("fuzz", "tiny disk"), entriesLBA: 2,
		entryCount: 4, entrySize: entrySize, entriesCRC: crc32.ChecksumIEEE(entries),
	}
	copy(d[bs:], h.marshal(bs))
	h.myLBA, h.alternateLBA, h.entriesLBA = 6, 1, 5
	copy(d[6*bs:], h.marshal(bs))
	return d
}

// TestTinyDisk checks that the tiny seed of FuzzRead is a valid table, so
// that the fuzzer starts from one.
func TestTinyDisk(t *testing.T) {
	for _, bs := range []int64{512, 4096} {
		d := tinyDisk(bs)
		tbl, health, err := Read(bytes.NewReader(d), int64(len(d)))
		if err != nil || health.Primary != nil || health.Backup != nil || len(tbl.Partitions) != 1 {
			t.Errorf("%d-byte blocks: Read = %v, %+v, %v", bs, tbl, health, err)
		}
	}
}
