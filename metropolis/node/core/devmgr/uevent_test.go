package devmgr

import (
	"bytes"
	"maps"
	"slices"
	"strings"
	"testing"
)

// message builds a uevent message as the kernel sends it.
func message(header string, vars ...string) []byte {
	var b bytes.Buffer
	b.WriteString(header)
	b.WriteByte(0)
	for _, v := range vars {
		b.WriteString(v)
		b.WriteByte(0)
	}
	return b.Bytes()
}

// encode is the inverse of ParseEvent, with the variables sorted.
func encode(e *Event) []byte {
	var vars []string
	for _, k := range slices.Sorted(maps.Keys(e.Vars)) {
		vars = append(vars, k+"="+e.Vars[k])
	}
	return message(e.Action+"@"+e.DevPath, vars...)
}

// virtioNet is the announcement of qemu's virtio network card.
var virtioNet = message("add@/devices/pci0000:00/0000:00:03.0/virtio1",
	"ACTION=add", "DEVPATH=/devices/pci0000:00/0000:00:03.0/virtio1", "SUBSYSTEM=virtio",
	"MODALIAS=virtio:d00000001v00001AF4", "SEQNUM=1234")

func TestParseEvent(t *testing.T) {
	e, err := ParseEvent(virtioNet)
	if err != nil {
		t.Fatal(err)
	}
	if e.Action != "add" || e.DevPath != "/devices/pci0000:00/0000:00:03.0/virtio1" {
		t.Errorf("got %v, want add of virtio1", e)
	}
	if got := e.Get("MODALIAS"); got != "virtio:d00000001v00001AF4" {
		t.Errorf("MODALIAS %q", got)
	}
	if got := e.Get("DEVNAME"); got != "" {
		t.Errorf("DEVNAME of an event without one: %q", got)
	}
	// Values may contain '=' and be empty.
	e, err = ParseEvent(message("change@/devices/x", "ACTION=change", "DEVPATH=/devices/x", "EQ=a=b", "EMPTY="))
	if err != nil {
		t.Fatal(err)
	}
	if e.Get("EQ") != "a=b" || e.Get("EMPTY") != "" {
		t.Errorf("got %v", e.Vars)
	}
}

func TestParseEventErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  []byte
		want string
	}{
		{"empty", nil, "not ACTION@DEVPATH"},
		{"no at", message("add/devices/x", "ACTION=add", "DEVPATH=/devices/x"), "not ACTION@DEVPATH"},
		{"no action", message("@/devices/x", "ACTION=", "DEVPATH=/devices/x"), "not ACTION@DEVPATH"},
		{"relative path", message("add@devices/x", "ACTION=add", "DEVPATH=devices/x"), "not absolute"},
		{"not key=value", message("add@/devices/x", "ACTION=add", "DEVPATH=/devices/x", "garbage"), "not KEY=VALUE"},
		{"empty key", message("add@/devices/x", "ACTION=add", "DEVPATH=/devices/x", "=v"), "invalid key"},
		{"bad key", message("add@/devices/x", "ACTION=add", "DEVPATH=/devices/x", "A B=v"), "invalid key"},
		{"empty field", message("add@/devices/x", "ACTION=add", "", "DEVPATH=/devices/x"), "not KEY=VALUE"},
		{"duplicate", message("add@/devices/x", "ACTION=add", "DEVPATH=/devices/x", "DEVPATH=/devices/x"), "appears twice"},
		{"no ACTION", message("add@/devices/x", "DEVPATH=/devices/x"), "ACTION is"},
		{"other ACTION", message("add@/devices/x", "ACTION=remove", "DEVPATH=/devices/x"), "ACTION is"},
		{"other DEVPATH", message("add@/devices/x", "ACTION=add", "DEVPATH=/devices/y"), "DEVPATH is"},
		{"bad SEQNUM", message("add@/devices/x", "ACTION=add", "DEVPATH=/devices/x", "SEQNUM=-1"), "SEQNUM"},
		{"udev", append([]byte("libudev\x00"), virtioNet...), "udev message"},
		{"too long", message("add@/devices/x", "ACTION=add", "DEVPATH=/devices/x", "X="+strings.Repeat("a", maxEventSize)), "more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := ParseEvent(tc.msg)
			if err == nil {
				t.Fatalf("got %v, want an error containing %q", e, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want an error containing %q", err, tc.want)
			}
		})
	}
}

// FuzzParseEvent checks that ParseEvent never panics on what arrives from
// a socket, and that whatever it accepts says the same once encoded again.
func FuzzParseEvent(f *testing.F) {
	f.Add(virtioNet)
	f.Add(message("add@/devices/virtual/block/loop0", "ACTION=add", "DEVPATH=/devices/virtual/block/loop0",
		"SUBSYSTEM=block", "MAJOR=7", "MINOR=0", "DEVNAME=loop0", "DEVTYPE=disk", "DISKSEQ=1", "SEQNUM=2000"))
	f.Add(message("move@/devices/virtual/net/eth1", "ACTION=move", "DEVPATH=/devices/virtual/net/eth1",
		"SUBSYSTEM=net", "DEVPATH_OLD=/devices/virtual/net/eth0", "INTERFACE=eth1", "IFINDEX=2", "SEQNUM=7"))
	f.Add(message("add@/devices/virtual/mem/null", "ACTION=add", "DEVPATH=/devices/virtual/mem/null",
		"SUBSYSTEM=mem", "SYNTH_UUID=0d5e3f29-1f44-4b5a-8c52-3c0b8e8b1c7e", "SEQNUM=9"))
	f.Add([]byte("libudev\x00add@/x\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEvent(b)
		if err != nil {
			return
		}
		again, err := ParseEvent(encode(e))
		if err != nil {
			t.Fatalf("%q parsed, but its encoding %q does not: %v", b, encode(e), err)
		}
		if again.Action != e.Action || again.DevPath != e.DevPath || !maps.Equal(again.Vars, e.Vars) {
			t.Fatalf("%q parsed as %+v, its encoding as %+v", b, e, again)
		}
	})
}
