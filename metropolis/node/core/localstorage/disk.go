package localstorage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf16"

	"metropolis.dev/osbase/blockdev"
	"metropolis.dev/osbase/efivarfs"
	"metropolis.dev/osbase/gpt"
)

// partition is a partition of the node's disk.
type partition struct {
	// number is the partition's number, from 1, as in the table and to
	// the kernel.
	number int
	// path is its block device.
	path  string
	entry gpt.Partition
}

// nodeDisk is the disk the node runs from and its partitions, found by
// their type GUIDs. The system partitions may be missing, as on a disk
// prepared for tests.
type nodeDisk struct {
	path             string
	esp, data        *partition
	systemA, systemB *partition
}

// Where the kernel shows the system's block devices and their nodes.
const (
	sysBlockDir = "/sys/block"
	devDir      = "/dev"
)

// loaderESPID returns the partition GUID of the ESP that the UEFI stub of
// the node's kernel image was loaded from (LoaderDevicePartUUID), or nil if
// the firmware or stub did not say.
func loaderESPID() (*gpt.GUID, error) {
	b, _, err := efivarfs.System.Read(efivarfs.VendorLoader, "LoaderDevicePartUUID")
	if errors.Is(err, efivarfs.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(b)%2 != 0 {
		return nil, fmt.Errorf("LoaderDevicePartUUID has an odd length of %d bytes", len(b))
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = uint16(b[2*i]) | uint16(b[2*i+1])<<8
	}
	s := strings.TrimRight(string(utf16.Decode(u)), "\x00")
	id, err := gpt.ParseGUID(strings.ToLower(s))
	if err != nil {
		return nil, fmt.Errorf("LoaderDevicePartUUID: %w", err)
	}
	return &id, nil
}

// findNodeDisk finds the node's disk among the block devices in sysBlock
// (/sys/block), whose nodes are in dev: the disk with a GPT holding an EFI
// system partition and a Metropolis data partition. If espID is not nil,
// only the disk whose ESP has that partition GUID qualifies: the firmware
// said it booted from it. Two candidates are an error; the node does not
// guess which disk is its own.
func findNodeDisk(sysBlock, dev string, espID *gpt.GUID) (*nodeDisk, error) {
	entries, err := os.ReadDir(sysBlock)
	if err != nil {
		return nil, fmt.Errorf("listing block devices: %w", err)
	}
	var found []*nodeDisk
	var skipped []string
	for _, e := range entries {
		name := e.Name()
		if skipDevice(sysBlock, name) {
			continue
		}
		d, err := readNodeDisk(sysBlock, dev, name)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		if espID != nil && d.esp.entry.ID != *espID {
			skipped = append(skipped, fmt.Sprintf("%s: its ESP is %v, not %v, the one the node booted from", name, d.esp.entry.ID, *espID))
			continue
		}
		found = append(found, d)
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no disk has an EFI system partition and a Metropolis data partition (%s)", strings.Join(skipped, "; "))
	case 1:
		return found[0], nil
	}
	var paths []string
	for _, d := range found {
		paths = append(paths, d.path)
	}
	return nil, fmt.Errorf("disks %s all look like the node's disk; refusing to guess which one is", strings.Join(paths, ", "))
}

// skipDevice tells whether the block device name cannot be the node's
// disk: a device-mapper, loop or RAM device, or one without media.
func skipDevice(sysBlock, name string) bool {
	for _, prefix := range []string{"dm-", "loop", "ram", "zram"} {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	size, err := os.ReadFile(filepath.Join(sysBlock, name, "size"))
	return err != nil || strings.TrimSpace(string(size)) == "0"
}

// readNodeDisk reads the partition table of the disk name and finds the
// node's partitions in it.
func readNodeDisk(sysBlock, dev, name string) (*nodeDisk, error) {
	path := filepath.Join(dev, name)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	table, _, err := gpt.Read(f, size)
	if err != nil {
		return nil, err
	}
	// The kernel's names of the disk's partitions, by number.
	names, err := partitionNames(filepath.Join(sysBlock, name))
	if err != nil {
		return nil, err
	}
	d := &nodeDisk{path: path}
	for i, p := range table.Partitions {
		if p == nil {
			continue
		}
		var slot **partition
		switch p.Type {
		case gpt.TypeEFISystem:
			slot = &d.esp
		case gpt.TypeMetropolisData:
			slot = &d.data
		case gpt.TypeMetropolisSystemA:
			slot = &d.systemA
		case gpt.TypeMetropolisSystemB:
			slot = &d.systemB
		default:
			continue
		}
		if *slot != nil {
			return nil, fmt.Errorf("partitions %d and %d both have the type %v", (*slot).number, i+1, p.Type)
		}
		kname, ok := names[i+1]
		if !ok {
			return nil, fmt.Errorf("the kernel has no device for partition %d (%q)", i+1, p.Name)
		}
		*slot = &partition{number: i + 1, path: filepath.Join(dev, kname), entry: *p}
	}
	if d.esp == nil || d.data == nil {
		return nil, errors.New("no EFI system partition and Metropolis data partition")
	}
	return d, nil
}

// partitionNames returns the kernel's names of the partitions of the disk
// whose sysfs directory is dir, by partition number.
func partitionNames(dir string) (map[int]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make(map[int]string)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "partition"))
		if err != nil {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, fmt.Errorf("%s: partition number %q: %w", e.Name(), b, err)
		}
		names[n] = e.Name()
	}
	return names, nil
}

// growData extends the data partition into the free space after it, in
// the partition table and in the kernel: to the end of the disk, as the
// last partition, when a node image was written to a disk larger than the
// image. It returns the partition's old and new size in bytes, equal if it
// did not grow.
func (d *nodeDisk) growData() (from, to int64, err error) {
	f, err := os.OpenFile(d.path, os.O_RDWR, 0)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, 0, err
	}
	// Read afresh: the table is written back whole.
	table, _, err := gpt.Read(f, size)
	if err != nil {
		return 0, 0, err
	}
	n := d.data.number
	if n > len(table.Partitions) || table.Partitions[n-1] == nil || table.Partitions[n-1].ID != d.data.entry.ID {
		return 0, 0, fmt.Errorf("partition %d of %s is not the data partition any more", n, d.path)
	}
	p := table.Partitions[n-1]
	blocks := func(p *gpt.Partition) int64 { return int64(p.LastLBA-p.FirstLBA+1) * table.BlockSize }
	from = blocks(p)
	grown, err := table.GrowPartition(n, 0)
	if err != nil || !grown {
		return from, from, err
	}
	if err := table.Write(f); err != nil {
		return from, from, err
	}
	if err := f.Sync(); err != nil {
		return from, from, err
	}
	to = blocks(p)
	if err := blockdev.ResizePartition(f, n, int64(p.FirstLBA)*table.BlockSize, to); err != nil {
		return from, from, fmt.Errorf("the partition table says %d bytes, but the kernel was not told: %w", to, err)
	}
	d.data.entry = *p
	return from, to, nil
}
