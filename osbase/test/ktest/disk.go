package ktest

import (
	"os"
	"path/filepath"
	"testing"
)

// DiskBySerial returns the device path, inside the VM, of the virtio disk
// that the host attached with the given serial (qemu.Disk's Serial). Disk
// names depend on probing order; serials do not.
func DiskBySerial(t testing.TB, serial string) string {
	t.Helper()
	serials, err := filepath.Glob("/sys/block/*/serial")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range serials {
		if s, err := os.ReadFile(p); err == nil && string(s) == serial {
			return "/dev/" + filepath.Base(filepath.Dir(p))
		}
	}
	t.Fatalf("no disk with serial %q among %v", serial, serials)
	return ""
}
