package gpt

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"metropolis.dev/osbase/structfs/structfstest"
)

// nodeTable returns a node disk's partitions, as the installer lays them
// out, on a disk of size bytes.
func nodeTable(t testing.TB, blockSize, size int64) *Table {
	t.Helper()
	tbl := &Table{DiskGUID: DerivedGUID("test", "disk"), BlockSize: blockSize, DiskSize: size}
	for _, p := range []struct {
		typ  GUID
		name string
		size int64
	}{
		{TypeEFISystem, NameESP, 128 << 20},
		{TypeMetropolisSystemA, NameMetropolisSystemA, 256 << 20},
		{TypeMetropolisSystemB, NameMetropolisSystemB, 256 << 20},
		{TypeMetropolisData, NameMetropolisData, -1},
	} {
		part := &Partition{Type: p.typ, ID: DerivedGUID("test", p.name), Name: p.name}
		if err := tbl.AddPartition(part, p.size, 0); err != nil {
			t.Fatal(err)
		}
	}
	return tbl
}

// memDisk is a disk in memory that stores only the MiBs written to, so
// tests can use disks of realistic sizes.
type memDisk struct {
	size  int64
	pages map[int64][]byte
}

const pageSize = 1 << 20

func newMemDisk(size int64) *memDisk {
	return &memDisk{size: size, pages: make(map[int64][]byte)}
}

// at returns n bytes at off for tests to change, which must not cross a
// MiB boundary.
func (d *memDisk) at(off, n int64) []byte {
	p, ok := d.pages[off/pageSize]
	if !ok {
		p = make([]byte, pageSize)
		d.pages[off/pageSize] = p
	}
	return p[off%pageSize:][:n]
}

func (d *memDisk) ReadAt(b []byte, off int64) (int, error) {
	for n := 0; n < len(b); {
		pos := off + int64(n)
		if pos >= d.size {
			return n, io.EOF
		}
		chunk := min(int64(len(b)-n), pageSize-pos%pageSize, d.size-pos)
		if p, ok := d.pages[pos/pageSize]; ok {
			copy(b[n:n+int(chunk)], p[pos%pageSize:])
		} else {
			clear(b[n : n+int(chunk)])
		}
		n += int(chunk)
	}
	return len(b), nil
}

func (d *memDisk) WriteAt(b []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(b)) > d.size {
		return 0, fmt.Errorf("writing %d bytes at %d, beyond the disk of %d bytes", len(b), off, d.size)
	}
	for n := 0; n < len(b); {
		pos := off + int64(n)
		chunk := min(int64(len(b)-n), pageSize-pos%pageSize)
		copy(d.at(pos, chunk), b[n:])
		n += int(chunk)
	}
	return len(b), nil
}

// writeMem writes tbl to a zeroed disk in memory.
func writeMem(t testing.TB, tbl *Table) *memDisk {
	t.Helper()
	d := newMemDisk(tbl.DiskSize)
	if err := tbl.Write(d); err != nil {
		t.Fatal(err)
	}
	return d
}

// writeFile writes tbl to a new sparse file and returns its path.
func writeFile(t *testing.T, tbl *Table) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(tbl.DiskSize); err != nil {
		t.Fatal(err)
	}
	if err := tbl.Write(f); err != nil {
		t.Fatal(err)
	}
	return p
}

// readFile reads the table of the disk image at p.
func readFile(t *testing.T, p string) (*Table, Health) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	tbl, h, err := Read(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	return tbl, h
}

// run runs a host tool, failing the test with its output if it fails.
func run(t *testing.T, name, debianPackage string, args ...string) string {
	t.Helper()
	out, err := exec.Command(structfstest.RequireTool(t, name, debianPackage), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// loopDevice attaches the image at p to a loop device with the given
// logical block size, for tools that take the block size only from a
// device. It needs root and loop devices, like the erofs mount test.
func loopDevice(t *testing.T, p string, blockSize int64) string {
	t.Helper()
	dev := strings.TrimSpace(run(t, "losetup", "mount", "--find", "--show", "--sector-size", itoa(blockSize), p))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
			t.Errorf("detaching %s: %v\n%s", dev, err, out)
		}
	})
	return dev
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// patchHeader changes the header at block lba of d with patch and fixes its
// CRC, to make headers that are consistent but wrong.
func patchHeader(d *memDisk, blockSize int64, lba uint64, patch func(h []byte)) {
	h := d.at(int64(lba)*blockSize, headerSize)
	patch(h)
	clear(h[16:20])
	binary.LittleEndian.PutUint32(h[16:20], crc32.ChecksumIEEE(h))
}

// patchEntries changes the primary partition entries of d (written by Write)
// with patch and fixes the CRCs of the entries and the header.
func patchEntries(d *memDisk, blockSize int64, patch func(entries []byte)) {
	entries := d.at(2*blockSize, MaxPartitions*entrySize)
	patch(entries)
	patchHeader(d, blockSize, 1, func(h []byte) {
		binary.LittleEndian.PutUint32(h[88:92], crc32.ChecksumIEEE(entries))
	})
}
