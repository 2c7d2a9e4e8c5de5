package gpt

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// These tests check tables against GPT fdisk (sgdisk) and util-linux
// (sfdisk, which shares libfdisk with the other util-linux tools), two
// implementations independent of this package and of each other. Disks with
// 4096-byte blocks are checked through loop devices with that block size,
// as both tools take the block size only from a device.

// diskImage writes a node's table to a disk image and returns the path the
// tools should read it from.
func diskImage(t *testing.T, blockSize int64) (*Table, string) {
	tbl := nodeTable(t, blockSize, 2<<30)
	p := writeFile(t, tbl)
	if blockSize != 512 {
		p = loopDevice(t, p, blockSize)
	}
	return tbl, p
}

func TestSgdiskVerify(t *testing.T) {
	for _, bs := range []int64{512, 4096} {
		t.Run(fmt.Sprint(bs), func(t *testing.T) {
			_, p := diskImage(t, bs)
			out := run(t, "sgdisk", "gdisk", "--verify", p)
			if !strings.Contains(out, "No problems found.") || strings.Contains(out, "Caution") || strings.Contains(out, "Warning") {
				t.Errorf("sgdisk --verify found problems:\n%s", out)
			}
		})
	}
}

var sgdiskField = regexp.MustCompile(`(?m)^([A-Za-z ()]+): (.*)$`)

// sgdiskInfo returns the fields sgdisk --info prints for partition n.
func sgdiskInfo(t *testing.T, p string, n int) map[string]string {
	fields := make(map[string]string)
	for _, m := range sgdiskField.FindAllStringSubmatch(run(t, "sgdisk", "gdisk", fmt.Sprintf("--info=%d", n), p), -1) {
		fields[m[1]] = m[2]
	}
	return fields
}

func TestSgdiskPrint(t *testing.T) {
	for _, bs := range []int64{512, 4096} {
		t.Run(fmt.Sprint(bs), func(t *testing.T) {
			tbl, p := diskImage(t, bs)
			out := run(t, "sgdisk", "gdisk", "--print", p)
			// sgdisk shows the physical block size too for devices.
			if !strings.Contains(out, fmt.Sprintf("Sector size (logical): %d bytes", bs)) &&
				!strings.Contains(out, fmt.Sprintf("Sector size (logical/physical): %d/", bs)) {
				t.Errorf("sgdisk --print does not show a block size of %d:\n%s", bs, out)
			}
			if want := "Disk identifier (GUID): " + strings.ToUpper(tbl.DiskGUID.String()); !strings.Contains(out, want) {
				t.Errorf("sgdisk --print does not show %q:\n%s", want, out)
			}
			for i, part := range tbl.Partitions {
				got := sgdiskInfo(t, p, i+1)
				want := map[string]string{
					"Partition GUID code":   strings.ToUpper(part.Type.String()),
					"Partition unique GUID": strings.ToUpper(part.ID.String()),
					"First sector":          fmt.Sprint(part.FirstLBA),
					"Last sector":           fmt.Sprint(part.LastLBA),
					"Attribute flags":       fmt.Sprintf("%016X", part.Attributes),
					"Partition name":        "'" + part.Name + "'",
				}
				for k, v := range want {
					// sgdisk adds the type's name and the size after the value.
					if g := got[k]; g != v && !strings.HasPrefix(g, v+" ") {
						t.Errorf("partition %d: sgdisk says %s is %q, want %q", i+1, k, g, v)
					}
				}
			}
		})
	}
}

// sfdiskTable is the part of the JSON sfdisk --json prints that we check.
type sfdiskTable struct {
	Label      string
	ID         string
	FirstLBA   uint64
	LastLBA    uint64
	SectorSize int64
	Partitions []sfdiskPartition
}

type sfdiskPartition struct {
	Start, Size      uint64
	Type, UUID, Name string
}

func TestSfdisk(t *testing.T) {
	for _, bs := range []int64{512, 4096} {
		t.Run(fmt.Sprint(bs), func(t *testing.T) {
			tbl, p := diskImage(t, bs)
			run(t, "sfdisk", "fdisk", "--verify", p)
			var got struct{ PartitionTable sfdiskTable }
			if err := json.Unmarshal([]byte(run(t, "sfdisk", "fdisk", "--json", p)), &got); err != nil {
				t.Fatal(err)
			}
			g, err := tbl.geometry()
			if err != nil {
				t.Fatal(err)
			}
			want := sfdiskTable{
				Label:      "gpt",
				ID:         strings.ToUpper(tbl.DiskGUID.String()),
				FirstLBA:   g.firstUsable(),
				LastLBA:    g.lastUsable(),
				SectorSize: bs,
			}
			for _, part := range tbl.Partitions {
				want.Partitions = append(want.Partitions, sfdiskPartition{
					Start: part.FirstLBA,
					Size:  part.LastLBA - part.FirstLBA + 1,
					Type:  strings.ToUpper(part.Type.String()),
					UUID:  strings.ToUpper(part.ID.String()),
					Name:  part.Name,
				})
			}
			if !reflect.DeepEqual(got.PartitionTable, want) {
				t.Errorf("sfdisk --json gives\n%+v\nwant\n%+v", got.PartitionTable, want)
			}
		})
	}
}

// TestReadSgdisk reads tables that sgdisk wrote: gaps in the numbering,
// attributes, names with characters outside ASCII and of the maximum
// length, partitions out of order, both block sizes.
func TestReadSgdisk(t *testing.T) {
	disk := DerivedGUID("sgdisk", "disk")
	ids := []GUID{DerivedGUID("sgdisk", "1"), DerivedGUID("sgdisk", "3"), DerivedGUID("sgdisk", "4")}
	longName := strings.Repeat("n", MaxNameLen)
	for _, bs := range []int64{512, 4096} {
		t.Run(fmt.Sprint(bs), func(t *testing.T) {
			size := int64(64 << 20)
			// The disk as a file, formatted through a device for 4096.
			tbl := &Table{DiskGUID: disk, BlockSize: bs, DiskSize: size}
			p := writeFile(t, tbl)
			dev := p
			if bs != 512 {
				dev = loopDevice(t, p, bs)
			}
			mib := uint64(1<<20) / uint64(bs)
			run(t, "sgdisk", "gdisk", "--zap-all", dev)
			run(t, "sgdisk", "gdisk",
				"--disk-guid="+disk.String(),
				fmt.Sprintf("--new=3:%d:%d", 8*mib, 16*mib-1), "--typecode=3:8300", "--change-name=3:Dätä ☃",
				"--partition-guid=3:"+ids[1].String(), "--attributes=3:set:2", "--attributes=3:set:60",
				fmt.Sprintf("--new=1:%d:%d", mib, 2*mib-1), "--typecode=1:EF00", "--change-name=1:ESP",
				"--partition-guid=1:"+ids[0].String(),
				fmt.Sprintf("--new=4:%d:%d", 2*mib, 4*mib-1), "--typecode=4:"+TypeMetropolisSystemA.String(),
				"--change-name=4:"+longName, "--partition-guid=4:"+ids[2].String(),
				dev)
			got, health := readFile(t, p)
			if health.Primary != nil || health.Backup != nil {
				t.Errorf("Read reports %+v on a table sgdisk wrote", health)
			}
			linuxFS := mustParseGUID("0fc63daf-8483-4772-8e79-3d69d8477de4")
			want := &Table{DiskGUID: disk, BlockSize: bs, DiskSize: size, Partitions: []*Partition{
				{Type: TypeEFISystem, ID: ids[0], Name: "ESP", FirstLBA: mib, LastLBA: 2*mib - 1},
				nil,
				{Type: linuxFS, ID: ids[1], Name: "Dätä ☃", FirstLBA: 8 * mib, LastLBA: 16*mib - 1, Attributes: 1<<2 | 1<<60},
				{Type: TypeMetropolisSystemA, ID: ids[2], Name: longName, FirstLBA: 2 * mib, LastLBA: 4*mib - 1},
			}}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Read gives\n%s\nwant\n%s", dump(got), dump(want))
			}
		})
	}
}

// dump formats a table for error messages.
func dump(t *Table) string {
	var b strings.Builder
	fmt.Fprintf(&b, "disk %v, %d-byte blocks, %d bytes, boot code %x\n", t.DiskGUID, t.BlockSize, t.DiskSize, t.BootCode)
	for i, p := range t.Partitions {
		fmt.Fprintf(&b, "  %d: %+v\n", i+1, p)
	}
	return b.String()
}
