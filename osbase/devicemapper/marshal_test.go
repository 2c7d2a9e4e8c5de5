package devicemapper

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The golden layouts below are written out with offsets taken from struct
// dm_ioctl and struct dm_target_spec in include/uapi/linux/dm-ioctl.h,
// independently of the package's constants, in the byte order of the
// machines Metropolis runs on.

func requireLittleEndian(t *testing.T) {
	t.Helper()
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the golden layouts are little-endian")
	}
}

// golden is a byte buffer filled in at fixed offsets.
type golden []byte

func (g golden) u32(off int, v uint32) { binary.LittleEndian.PutUint32(g[off:], v) }
func (g golden) u64(off int, v uint64) { binary.LittleEndian.PutUint64(g[off:], v) }
func (g golden) str(off int, s string) { copy(g[off:], s) }

// dmIoctl returns a golden struct dm_ioctl (312 bytes) followed by dataLen
// zero bytes.
func dmIoctl(dataLen int, targets, flags uint32, name string) golden {
	g := make(golden, 312+dataLen)
	g.u32(0, 4) // version
	g.u32(4, 0)
	g.u32(8, 0)
	g.u32(12, uint32(312+dataLen)) // data_size
	g.u32(16, 312)                 // data_start
	g.u32(20, targets)             // target_count
	g.u32(28, flags)               // flags
	g.str(48, name)                // name[128]; uuid[129] at 176
	return g
}

func diffBytes(t *testing.T, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	if len(got) != len(want) {
		t.Errorf("got %d bytes, want %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Errorf("first difference at byte %d: got %#02x, want %#02x", i, got[i], want[i])
			break
		}
	}
	t.Errorf("got:\n%s\nwant:\n%s", hex.Dump(got), hex.Dump(want))
}

func TestCommandNumbers(t *testing.T) {
	// The values strace prints for these ioctls: _IOWR(0xfd, nr, 312 bytes).
	for _, tc := range []struct {
		cmd  command
		want uint32
	}{
		{cmdVersion, 0xc138fd00},
		{cmdDevCreate, 0xc138fd03},
		{cmdDevRemove, 0xc138fd04},
		{cmdDevSuspend, 0xc138fd06},
		{cmdTableLoad, 0xc138fd09},
		{cmdTableStatus, 0xc138fd0c},
	} {
		if got := tc.cmd.number(); got != tc.want {
			t.Errorf("%s: got %#x, want %#x", tc.cmd.name, got, tc.want)
		}
	}
}

func TestSimpleRequestLayout(t *testing.T) {
	requireLittleEndian(t)
	got := request{name: "root"}.buffer(0)
	diffBytes(t, got, dmIoctl(0, 0, 0, "root"))
}

func TestTableLoadLayout(t *testing.T) {
	requireLittleEndian(t)
	targets := []Target{
		// 40-byte spec + 10 bytes of parameters + NUL = 51, padded to 56.
		{StartSector: 0, Length: 2048, Type: "linear", Parameters: "/dev/vda 8"},
		// 40 + NUL = 41, padded to 48.
		{StartSector: 2048, Length: 1 << 40, Type: "zero"},
		// 40 + 7 + NUL = 48, already aligned.
		{StartSector: 1<<40 + 2048, Length: 8, Type: "error", Parameters: "1234567"},
	}
	data, err := marshalTargets(targets)
	if err != nil {
		t.Fatal(err)
	}
	got := request{name: "sys", flags: flagReadOnly, targetCount: 3, data: data}.buffer(0)

	want := dmIoctl(56+48+48, 3, 1, "sys")
	spec := 312
	want.u64(spec+0, 0)    // sector_start
	want.u64(spec+8, 2048) // length
	want.u32(spec+16, 0)   // status
	want.u32(spec+20, 56)  // next, from this spec
	want.str(spec+24, "linear")
	want.str(spec+40, "/dev/vda 8")
	spec += 56
	want.u64(spec+0, 2048)
	want.u64(spec+8, 1<<40)
	want.u32(spec+20, 48)
	want.str(spec+24, "zero")
	spec += 48
	want.u64(spec+0, 1<<40+2048)
	want.u64(spec+8, 8)
	want.u32(spec+20, 48)
	want.str(spec+24, "error")
	want.str(spec+40, "1234567")
	diffBytes(t, got, want)
}

func TestRequestReplySpace(t *testing.T) {
	requireLittleEndian(t)
	got := request{name: "x", flags: flagStatusTable}.buffer(100)
	diffBytes(t, got, dmIoctl(100, 0, 1<<4, "x"))
}

func TestHeaderRoundTrip(t *testing.T) {
	h := header{
		version:     [3]uint32{4, 47, 0},
		dataSize:    400,
		dataStart:   312,
		targetCount: 2,
		openCount:   -1,
		flags:       0x12345,
		eventNr:     7,
		dev:         unix.Mkdev(254, 3),
		name:        strings.Repeat("n", nameLen-1),
		uuid:        strings.Repeat("u", uuidLen-1),
	}
	b := make([]byte, headerSize)
	h.marshal(b)
	if got := parseHeader(b); got != h {
		t.Errorf("round trip: got %+v, want %+v", got, h)
	}
	if b[offName+nameLen-1] != 0 || b[headerSize-7] != 0 {
		t.Error("the name or uuid is not NUL-terminated")
	}
}

// statusReply returns a reply to DM_TABLE_STATUS as the kernel lays it out:
// specs linked by their offsets from the first spec.
func statusReply(targets []Target) []byte {
	var data []byte
	for _, tg := range targets {
		spec := make(golden, align(40+len(tg.Parameters)+1))
		spec.u64(0, tg.StartSector)
		spec.u64(8, tg.Length)
		spec.u32(20, uint32(len(data)+len(spec)))
		spec.str(24, tg.Type)
		spec.str(40, tg.Parameters)
		data = append(data, spec...)
	}
	g := dmIoctl(len(data)+64, uint32(len(targets)), 0, "dev")
	copy(g[312:], data)
	// The kernel sets data_size to the end of the last parameters.
	last := targets[len(targets)-1]
	g.u32(12, uint32(312+len(data)-align(40+len(last.Parameters)+1)+40+len(last.Parameters)+1))
	return g
}

func TestParseTargets(t *testing.T) {
	requireLittleEndian(t)
	want := []Target{
		{StartSector: 0, Length: 81920, Type: "verity", Parameters: "V"},
		{StartSector: 81920, Length: 8, Type: "linear", Parameters: "254:16 2048"},
		{StartSector: 81928, Length: 8, Type: "zero"},
	}
	reply := statusReply(want)
	got, err := parseTargets(reply, parseHeader(reply))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d targets, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("target %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestParseTargetsRejectsBadReplies(t *testing.T) {
	requireLittleEndian(t)
	good := func() golden {
		return golden(statusReply([]Target{
			{Length: 8, Type: "zero", Parameters: "a"},
			{StartSector: 8, Length: 8, Type: "zero", Parameters: "b"},
		}))
	}
	for _, tc := range []struct {
		name   string
		damage func(g golden) golden
		want   string
	}{
		{"data beyond buffer", func(g golden) golden { g.u32(12, uint32(len(g)+1)); return g }, "buffer"},
		{"data start inside header", func(g golden) golden { g.u32(16, 100); return g }, "buffer"},
		{"more targets than data", func(g golden) golden { g.u32(20, 3); return g }, "ends within target 2"},
		{"unterminated parameters", func(g golden) golden {
			g.u32(12, 312+48+41)
			g[312+48+40] = 'x'
			return g
		}, "not terminated"},
		{"link backwards", func(g golden) golden { g.u32(312+20, 0); return g }, "links back"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reply := tc.damage(good())
			_, err := parseTargets(reply, parseHeader(reply))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"root", true},
		{"system-a_verity.1", true},
		{strings.Repeat("x", 127), true},
		{strings.Repeat("x", 128), false},
		{"", false},
		{"a/b", false},
		{"a\x00b", false},
		{".", false},
		{"..", false},
		{"control", false},
	} {
		if err := checkName(tc.name); (err == nil) != tc.ok {
			t.Errorf("checkName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestMarshalTargetsRejects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target Target
		want   string
	}{
		{"no type", Target{Length: 1}, "type is empty"},
		{"long type", Target{Length: 1, Type: strings.Repeat("t", 16)}, "longer than"},
		{"NUL in type", Target{Length: 1, Type: "a\x00"}, "NUL"},
		{"NUL in parameters", Target{Length: 1, Type: "linear", Parameters: "a\x00b"}, "NUL"},
		{"zero length", Target{Type: "zero"}, "length is zero"},
		{"overflow", Target{StartSector: 1<<64 - 1, Length: 2, Type: "zero"}, "beyond"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := marshalTargets([]Target{{Length: 1, Type: "zero"}, tc.target})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "target 1") {
				t.Errorf("got error %v, want one about target 1 containing %q", err, tc.want)
			}
		})
	}
}

func TestError(t *testing.T) {
	err := error(&Error{
		Command:   "DM_TABLE_LOAD",
		Device:    "root",
		Errno:     unix.EINVAL,
		KernelLog: []string{"device-mapper: table: 254:0: verity: Device must be readonly (-EINVAL)", "device-mapper: ioctl: error adding target to table"},
	})
	want := `devicemapper: DM_TABLE_LOAD of "root": invalid argument (kernel log: device-mapper: table: 254:0: verity: Device must be readonly (-EINVAL); device-mapper: ioctl: error adding target to table)`
	if err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
	if !errors.Is(err, unix.EINVAL) {
		t.Error("the error does not match its errno")
	}
	if got := (&Error{Command: "DM_VERSION", Errno: unix.ENOTTY}).Error(); got != "devicemapper: DM_VERSION: inappropriate ioctl for device" {
		t.Errorf("got %q", got)
	}
}

func TestKmsgText(t *testing.T) {
	for _, tc := range []struct{ record, want string }{
		{"3,1234,5678901,-;device-mapper: ioctl: error adding target to table\n", "device-mapper: ioctl: error adding target to table"},
		{"3,1235,5678902,-,caller=T42;device-mapper: verity: 254:0: data block 3 is corrupted\n SUBSYSTEM=block\n DEVICE=b254:0\n", "device-mapper: verity: 254:0: data block 3 is corrupted"},
		{"6,1,2,c;no newline", "no newline"},
		{"garbage", ""},
	} {
		if got := kmsgText([]byte(tc.record)); got != tc.want {
			t.Errorf("kmsgText(%q) = %q, want %q", tc.record, got, tc.want)
		}
	}
}

func TestDevicePath(t *testing.T) {
	for _, tc := range []struct {
		dev  uint64
		want string
	}{
		{unix.Mkdev(254, 0), "/dev/dm-0"},
		{unix.Mkdev(253, 17), "/dev/dm-17"},
		// Minors above 255 are stored in two parts of a dev_t.
		{unix.Mkdev(254, 1000), "/dev/dm-1000"},
	} {
		if got := DevicePath(tc.dev); got != tc.want {
			t.Errorf("DevicePath(%#x) = %q, want %q", tc.dev, got, tc.want)
		}
	}
}
