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
	"unsafe"

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
		Run: "^TestVM",
		// dm-crypt finds its ciphers by name, and the VM has no modprobe
		// for the kernel to load them with: aesni_intel provides
		// xts(aes) and gcm(aes) on the CPU qemu emulates.
		Modules: []string{"virtio_pci", "virtio_blk", "dm_mod", "dm_crypt", "dm_integrity", "aesni_intel"},
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

// readDisk reads n bytes at off from the disk, bypassing its page cache.
func readDisk(t *testing.T, disk string, off, n int64) []byte {
	t.Helper()
	d, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := unix.IoctlSetInt(int(d.Fd()), unix.BLKFLSBUF, 0); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, n)
	if _, err := d.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

// writeDevice writes b at off to a device and syncs it.
func writeDevice(t *testing.T, path string, b []byte, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatalf("writing %d bytes at %d to %s: %v", len(b), off, path, err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// TestVMCrypt maps part of the disk through dm-crypt, checks that what is
// written reaches the disk encrypted and reads back, that the table does
// not reveal the key, and that the key is in no keyring afterwards.
func TestVMCrypt(t *testing.T) {
	ktest.OnlyInVM(t)
	disk := ktest.DiskBySerial(t, diskSerial)
	key := devicemapper.Key(bytes.Repeat([]byte("k3y!"), 16))
	const name = "crypt-test"
	dev, err := devicemapper.CreateCryptDevice(name, devicemapper.CryptTarget{
		Device:         disk,
		Offset:         2048,
		Sectors:        2048,
		Cipher:         "aes-xts-plain64",
		Key:            key,
		SectorSize:     4096,
		IVLargeSectors: true,
	})
	if err != nil {
		t.Fatalf("CreateCryptDevice: %v", err)
	}
	t.Cleanup(func() {
		if err := devicemapper.RemoveDevice(name); err != nil {
			t.Errorf("RemoveDevice: %v", err)
		}
	})
	path := devicemapper.DevicePath(dev)

	plain := bytes.Repeat([]byte("plaintext block "), 256)
	writeDevice(t, path, plain, 4096)
	got := make([]byte, len(plain))
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(got, 4096); err != nil || !bytes.Equal(got, plain) {
		t.Errorf("reading back through the mapping: %q..., %v", got[:16], err)
	}
	onDisk := readDisk(t, disk, 2048*512+4096, int64(len(plain)))
	if bytes.Equal(onDisk, plain) || bytes.Contains(onDisk, []byte("plaintext block")) {
		t.Error("the disk holds the plaintext")
	}

	table, err := devicemapper.Table(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(table) != 1 || !strings.Contains(table[0].Parameters, ":64:logon:devicemapper:"+name) {
		t.Errorf("table %v does not refer to the key by description", table)
	}
	if s := fmt.Sprint(table); strings.Contains(s, fmt.Sprintf("%x", []byte(key))) || strings.Contains(s, string(key)) {
		t.Errorf("the table reveals the key: %s", s)
	}
	keys, err := os.ReadFile("/proc/keys")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(keys), "devicemapper:") {
		t.Errorf("the key is still in a keyring:\n%s", keys)
	}
}

// TestVMIntegrity formats a dm-integrity device, puts dm-crypt with an AEAD
// cipher on top, and checks that a block changed on the disk fails to read
// while its neighbours read fine.
func TestVMIntegrity(t *testing.T) {
	ktest.OnlyInVM(t)
	disk := ktest.DiskBySerial(t, diskSerial)
	const offset = 2048
	// The kernel formats a device whose superblock sector is zero.
	writeDevice(t, disk, make([]byte, 4096), offset*512)
	// Direct mode keeps the journal out of the way of finding a block on
	// the disk below.
	it := devicemapper.IntegrityTarget{Device: disk, Offset: offset, TagSize: 28, Mode: devicemapper.IntegrityDirect, BlockSize: 4096}
	sectors, err := devicemapper.IntegrityDataSectors("integrity-probe", it)
	if err != nil {
		t.Fatalf("IntegrityDataSectors: %v", err)
	}
	// The metadata (superblock, journal, tags) takes some of the space.
	if sectors == 0 || sectors >= diskSectors-offset || sectors%8 != 0 {
		t.Fatalf("IntegrityDataSectors = %d, want a positive multiple of 8 below %d", sectors, diskSectors-offset)
	}
	if _, err := devicemapper.Table("integrity-probe"); !errors.Is(err, unix.ENXIO) {
		t.Errorf("the probe device is still there: %v", err)
	}
	// A second look finds the same superblock.
	if again, err := devicemapper.IntegrityDataSectors("integrity-probe", it); err != nil || again != sectors {
		t.Errorf("IntegrityDataSectors again = %d, %v; want %d", again, err, sectors)
	}
	t.Logf("dm-integrity provides %d of %d sectors", sectors, diskSectors-offset)

	it.Sectors = sectors
	itTarget, err := it.Target()
	if err != nil {
		t.Fatal(err)
	}
	const itName = "integrity-test"
	itPath := create(t, itName, false, []devicemapper.Target{itTarget})
	key := devicemapper.Key(bytes.Repeat([]byte{7}, 32))
	const cryptName = "integrity-crypt"
	var f *os.File
	mapCrypt := func() {
		t.Helper()
		dev, err := devicemapper.CreateCryptDevice(cryptName, devicemapper.CryptTarget{
			Device:           itPath,
			Sectors:          sectors,
			Cipher:           "capi:gcm(aes)-random",
			Key:              key,
			SectorSize:       4096,
			IntegrityTagSize: 28,
			IntegrityType:    "aead",
		})
		if err != nil {
			t.Fatalf("CreateCryptDevice: %v", err)
		}
		if f, err = os.OpenFile(devicemapper.DevicePath(dev), os.O_RDWR|unix.O_DIRECT, 0); err != nil {
			t.Fatal(err)
		}
	}
	// unmapCrypt removes the dm-crypt device and flushes the dm-integrity
	// device below, so that the disk has everything written.
	unmapCrypt := func() {
		t.Helper()
		f.Close()
		if err := devicemapper.RemoveDevice(cryptName); err != nil {
			t.Fatalf("RemoveDevice(%q): %v", cryptName, err)
		}
		if err := devicemapper.SuspendDevice(itName); err != nil {
			t.Fatalf("SuspendDevice: %v", err)
		}
		if err := devicemapper.ResumeDevice(itName); err != nil {
			t.Fatalf("ResumeDevice: %v", err)
		}
	}
	mapCrypt()
	t.Cleanup(func() { f.Close(); devicemapper.RemoveDevice(cryptName) })

	// Blocks that were never written have no valid tag.
	block := alignedBlock()
	if _, err := f.ReadAt(block, 0); !errors.Is(err, unix.EILSEQ) && !errors.Is(err, unix.EIO) {
		t.Errorf("reading a block never written: got %v, want EILSEQ or EIO", err)
	}
	// Three written blocks read back.
	data := bytes.Repeat([]byte("authenticated!! "), 3*4096/16)
	for i := range 3 {
		copy(block, data[i*4096:])
		if _, err := f.WriteAt(block, int64(i)*4096); err != nil {
			t.Fatalf("writing block %d: %v", i, err)
		}
	}
	for i := range 3 {
		if _, err := f.ReadAt(block, int64(i)*4096); err != nil || !bytes.Equal(block, data[i*4096:(i+1)*4096]) {
			t.Fatalf("reading back block %d: %v", i, err)
		}
	}
	unmapCrypt()
	if bytes.Contains(readDisk(t, disk, 0, diskSectors*512), []byte("authenticated!!")) {
		t.Fatal("the disk holds the plaintext")
	}

	// Block 1 is written again, with a new random IV: its ciphertext on
	// the disk is the 4 KiB that change completely. One byte of it is
	// flipped there.
	before := readDisk(t, disk, 0, diskSectors*512)
	mapCrypt()
	copy(block, data[4096:])
	if _, err := f.WriteAt(block, 4096); err != nil {
		t.Fatal(err)
	}
	unmapCrypt()
	after := readDisk(t, disk, 0, diskSectors*512)
	most, mostAt := 0, -1
	for at := 0; at < len(after); at += 4096 {
		n := 0
		for i := at; i < at+4096; i++ {
			if before[i] != after[i] {
				n++
			}
		}
		if n > most {
			most, mostAt = n, at
		}
	}
	if most < 4000 {
		t.Fatalf("rewriting block 1 changed at most %d bytes of any 4 KiB of the disk", most)
	}
	flipped := after[mostAt : mostAt+4096]
	flipped[100] ^= 1
	writeDevice(t, disk, flipped, int64(mostAt))

	mapCrypt()
	for i, wantOK := range []bool{true, false, true} {
		_, err := f.ReadAt(block, int64(i)*4096)
		if wantOK && err != nil {
			t.Errorf("block %d: %v", i, err)
		}
		if !wantOK && err == nil {
			t.Errorf("block %d, changed on the disk, read without error", i)
		}
	}
}

// alignedBlock returns a 4 KiB buffer aligned for O_DIRECT.
func alignedBlock() []byte {
	b := make([]byte, 2*4096)
	off := (4096 - int(uintptr(unsafe.Pointer(&b[0]))%4096)) % 4096
	return b[off : off+4096]
}
