package qemu

import (
	"net"
	"slices"
	"testing"
)

func TestTapNetworkArgs(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	args, err := TapNetwork{Device: "tap,0", MAC: mac}.Args(&Setup{dir: "/vm", index: 2})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"-netdev", "tap,id=net-2,ifname=tap,,0,script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=net-2,mac=02:00:00:00:00:01",
	}
	if !slices.Equal(args, want) {
		t.Errorf("got %q, want %q", args, want)
	}
	if _, err := (TapNetwork{}).Args(&Setup{dir: "/vm"}); err == nil {
		t.Error("no error for a TapNetwork without a device")
	}
	if _, err := (TapNetwork{Device: "tap0", MAC: mac[:4]}).Args(&Setup{dir: "/vm"}); err == nil {
		t.Error("no error for a short MAC")
	}
	a, err := TapNetwork{Device: "tap0"}.Args(&Setup{dir: "/a"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := TapNetwork{Device: "tap0"}.Args(&Setup{dir: "/b"})
	if err != nil {
		t.Fatal(err)
	}
	if a[3] == b[3] {
		t.Errorf("two VMs got the same default MAC: %s", a[3])
	}
}
