package devicemapper_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"metropolis.dev/osbase/devicemapper"
	"metropolis.dev/osbase/test/ktest"
	"metropolis.dev/osbase/test/qemu"
)

// The tests below run in a ktest VM with a blank disk, on the node's
// kernel: the machine running the tests may have no device-mapper, and
// must not have its devices changed.

// diskSerial names the VM's disk.
const diskSerial = "dm-test"

// diskSectors is the size of the VM's disk in 512-byte sectors.
const diskSectors = 8192

// TestKernel boots the VM that runs the TestVM tests.
func TestKernel(t *testing.T) {
	disk := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(disk, make([]byte, diskSectors*512), 0o644); err != nil {
		t.Fatal(err)
	}
	ktest.Run(t, ktest.Options{
		Run:     "^TestVM",
		Modules: []string{"virtio_pci", "virtio_blk", "dm_mod"},
		Devices: []qemu.Device{qemu.Disk{Path: disk, Serial: diskSerial}},
	})
}

// sector returns the content the tests give a sector of the disk: its
// number, repeated.
func sector(n uint64) []byte {
	b := make([]byte, 512)
	for off := 0; off < len(b); off += 8 {
		binary.LittleEndian.PutUint64(b[off:], n)
	}
	return b
}

// fillDisk writes every sector of the disk with its number.
func fillDisk(t *testing.T, disk string) {
	t.Helper()
	var content []byte
	for n := range uint64(diskSectors) {
		content = append(content, sector(n)...)
	}
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(content, 0); err != nil {
		t.Fatal(err)
	}
	// The device-mapper device reads the disk, not its page cache.
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// create creates a device and removes it when the test ends, unless the
// test removed it.
func create(t *testing.T, name string, readOnly bool, targets []devicemapper.Target) string {
	t.Helper()
	dev, err := devicemapper.CreateDevice(name, readOnly, targets)
	if err != nil {
		t.Fatalf("CreateDevice(%q): %v", name, err)
	}
	t.Cleanup(func() {
		if err := devicemapper.RemoveDevice(name); err != nil && !errors.Is(err, unix.ENXIO) {
			t.Errorf("RemoveDevice(%q): %v", name, err)
		}
	})
	return devicemapper.DevicePath(dev)
}

func TestVMVersion(t *testing.T) {
	ktest.OnlyInVM(t)
	v, err := devicemapper.Version()
	if err != nil {
		t.Fatal(err)
	}
	// Linux 6.1 has interface version 4.47.
	if v[0] != 4 || v[1] < 40 {
		t.Errorf("interface version %d.%d.%d, want 4.40 or later", v[0], v[1], v[2])
	}
}

// TestVMLinear maps the two halves of part of the disk in swapped order,
// reads and writes through the mapping, and removes it.
func TestVMLinear(t *testing.T) {
	ktest.OnlyInVM(t)
	disk := ktest.DiskBySerial(t, diskSerial)
	fillDisk(t, disk)
	var st unix.Stat_t
	if err := unix.Stat(disk, &st); err != nil {
		t.Fatal(err)
	}
	diskDev := fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))

	// Device sectors 0-999 are disk sectors 3000-3999; device sectors
	// 1000-1099 are disk sectors 100-199. The odd lengths put the second
	// spec at an offset that needs padding to be aligned.
	targets := []devicemapper.Target{
		{StartSector: 0, Length: 1000, Type: "linear", Parameters: disk + " 3000"},
		{StartSector: 1000, Length: 100, Type: "linear", Parameters: disk + " 100"},
	}
	const name = "linear-test"
	path := create(t, name, false, targets)
	diskSector := func(devSector uint64) uint64 {
		if devSector < 1000 {
			return 3000 + devSector
		}
		return 100 + devSector - 1000
	}

	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1100*512 {
		t.Fatalf("%s has %d bytes, want %d", path, len(got), 1100*512)
	}
	for n := range uint64(1100) {
		if want := sector(diskSector(n)); !bytes.Equal(got[n*512:(n+1)*512], want) {
			t.Fatalf("sector %d of %s holds %x..., want disk sector %d", n, path, got[n*512:n*512+8], diskSector(n))
		}
	}

	// Writes go through too.
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	marker := bytes.Repeat([]byte("written through the mapping "), 19)[:512]
	if _, err := f.WriteAt(marker, 1050*512); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	d, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// The disk's page cache does not know about writes to the mapping.
	if err := unix.IoctlSetInt(int(d.Fd()), unix.BLKFLSBUF, 0); err != nil {
		t.Fatal(err)
	}
	back := make([]byte, 512)
	if _, err := d.ReadAt(back, int64(diskSector(1050))*512); err != nil || !bytes.Equal(back, marker) {
		t.Errorf("disk sector %d holds %q (%v) after writing to the mapping", diskSector(1050), back[:32], err)
	}

	table, err := devicemapper.Table(name)
	if err != nil {
		t.Fatal(err)
	}
	// The kernel reports devices by number.
	wantTable := []devicemapper.Target{
		{StartSector: 0, Length: 1000, Type: "linear", Parameters: diskDev + " 3000"},
		{StartSector: 1000, Length: 100, Type: "linear", Parameters: diskDev + " 100"},
	}
	if fmt.Sprint(table) != fmt.Sprint(wantTable) {
		t.Errorf("Table(%q) = %v, want %v", name, table, wantTable)
	}
	status, err := devicemapper.TableStatus(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(status) != 2 || status[0].Type != "linear" || status[1].StartSector != 1000 {
		t.Errorf("TableStatus(%q) = %v, want two linear targets", name, status)
	}

	if err := devicemapper.RemoveDevice(name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists after RemoveDevice: %v", path, err)
	}
	if _, err := devicemapper.Table(name); !errors.Is(err, unix.ENXIO) {
		t.Errorf("Table of a removed device: got %v, want ENXIO", err)
	}
}

// TestVMManyTargets loads a table whose reply does not fit the first
// buffer TableStatus offers, so that it has to ask again.
func TestVMManyTargets(t *testing.T) {
	ktest.OnlyInVM(t)
	disk := ktest.DiskBySerial(t, diskSerial)
	var targets []devicemapper.Target
	for i := range uint64(2000) {
		targets = append(targets, devicemapper.Target{StartSector: i, Length: 1, Type: "linear", Parameters: fmt.Sprintf("%s %d", disk, diskSectors-1-i)})
	}
	const name = "many-targets"
	create(t, name, true, targets)
	table, err := devicemapper.Table(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(table) != len(targets) {
		t.Fatalf("Table(%q) returned %d targets, want %d", name, len(table), len(targets))
	}
	for i, tg := range table {
		want := fmt.Sprintf(" %d", diskSectors-1-i)
		if tg.StartSector != uint64(i) || !strings.HasSuffix(tg.Parameters, want) {
			t.Fatalf("target %d is %v, want one at sector %d mapping disk sector%s", i, tg, i, want)
		}
	}
}

func TestVMReadOnly(t *testing.T) {
	ktest.OnlyInVM(t)
	disk := ktest.DiskBySerial(t, diskSerial)
	path := create(t, "read-only", true, []devicemapper.Target{{Length: 8, Type: "linear", Parameters: disk + " 0"}})
	ro, err := os.ReadFile("/sys/block/" + filepath.Base(path) + "/ro")
	if err != nil || string(ro) != "1\n" {
		t.Errorf("%s: ro is %q (%v), want 1", path, ro, err)
	}
	// Linux opens read-only block devices for writing, and refuses the
	// writes.
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, 512)); !errors.Is(err, unix.EPERM) {
		t.Errorf("writing to %s: got %v, want EPERM", path, err)
	}
	if _, err := os.ReadFile(path); err != nil {
		t.Errorf("reading %s: %v", path, err)
	}
}

// TestVMBadTables checks that a table the kernel refuses is reported with
// the kernel's reason, and leaves no device behind.
func TestVMBadTables(t *testing.T) {
	ktest.OnlyInVM(t)
	disk := ktest.DiskBySerial(t, diskSerial)
	for _, tc := range []struct {
		name    string
		targets []devicemapper.Target
		errno   unix.Errno
		// want is in the kernel's explanation.
		want string
	}{
		{"unknown type", []devicemapper.Target{{Length: 8, Type: "no-such-target"}}, unix.EINVAL, "unknown target type"},
		{"missing device", []devicemapper.Target{{Length: 8, Type: "linear", Parameters: "/dev/no-such-disk 0"}}, unix.ENODEV, "Device lookup failed"},
		{"bad parameters", []devicemapper.Target{{Length: 8, Type: "linear", Parameters: disk}}, unix.EINVAL, "Invalid argument count"},
		{"gap", []devicemapper.Target{
			{Length: 8, Type: "linear", Parameters: disk + " 0"},
			{StartSector: 16, Length: 8, Type: "linear", Parameters: disk + " 0"},
		}, unix.EINVAL, "Gap in table"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const name = "bad-table"
			_, err := devicemapper.CreateDevice(name, false, tc.targets)
			var dmErr *devicemapper.Error
			if !errors.As(err, &dmErr) {
				t.Fatalf("got %v, want a *devicemapper.Error", err)
			}
			t.Log(err)
			if dmErr.Command != "DM_TABLE_LOAD" || dmErr.Device != name || !errors.Is(err, tc.errno) {
				t.Errorf("got %s of %q failing with %v, want DM_TABLE_LOAD of %q failing with %v", dmErr.Command, dmErr.Device, dmErr.Errno, name, tc.errno)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("the error does not give the kernel's reason %q: %v", tc.want, err)
			}
			// The half-created device is gone, and its name free.
			if _, err := devicemapper.Table(name); !errors.Is(err, unix.ENXIO) {
				t.Errorf("Table of the failed device: got %v, want ENXIO", err)
			}
		})
	}
}

func TestVMNameConflicts(t *testing.T) {
	ktest.OnlyInVM(t)
	disk := ktest.DiskBySerial(t, diskSerial)
	const name = "taken"
	targets := []devicemapper.Target{{Length: 8, Type: "linear", Parameters: disk + " 0"}}
	path := create(t, name, true, targets)

	// A second device of the same name fails, and must not take the
	// first one with it.
	_, err := devicemapper.CreateDevice(name, true, targets)
	var dmErr *devicemapper.Error
	if !errors.As(err, &dmErr) || dmErr.Command != "DM_DEV_CREATE" || !errors.Is(err, unix.EBUSY) {
		t.Errorf("creating a second %q: got %v, want DM_DEV_CREATE failing with EBUSY", name, err)
	}
	if _, err := devicemapper.Table(name); err != nil {
		t.Errorf("the first %q is gone: %v", name, err)
	}

	// An open device cannot be removed.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	err = devicemapper.RemoveDevice(name)
	f.Close()
	if !errors.Is(err, unix.EBUSY) {
		t.Errorf("removing an open device: got %v, want EBUSY", err)
	}
	if err := devicemapper.RemoveDevice(name); err != nil {
		t.Errorf("removing the closed device: %v", err)
	}
	if err := devicemapper.RemoveDevice(name); !errors.Is(err, unix.ENXIO) {
		t.Errorf("removing a removed device: got %v, want ENXIO", err)
	}
}
