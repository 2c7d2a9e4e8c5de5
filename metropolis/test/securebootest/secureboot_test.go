package securebootest

import (
	"bytes"
	"debug/pe"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"metropolis.dev/build/secureboot"
	"metropolis.dev/build/uki"
	"metropolis.dev/osbase/test/qemu"
)

// bootTimeout is how long the firmware may take, under TCG on a loaded
// 2-core machine, from one boot attempt to the next, or from starting the
// UKI to the kernel's panic (see qemu.Timeout).
const bootTimeout = 90 * time.Second

// bootAttempt matches the boot manager's line on the outcome of loading the
// default boot loader of a disk: it starts it, or says why it could not
// load it.
var bootAttempt = regexp.MustCompile(`BdsDxe: (starting|failed to load) Boot[0-9A-F]{4} "UEFI Misc Device[^"]*" from \S+?(?:: (.*))?$`)

// refusals are the errors EDK2 reports for an image that Secure Boot
// verification rejects: Access Denied when its signature (or lack of one)
// is not allowed by db, Security Violation when policy defers the decision.
var refusals = []string{"Access Denied", "Security Violation"}

// TestSecureBoot boots a VM whose firmware has our key enrolled and Secure
// Boot on, with one disk per UKI: first three that the firmware must
// refuse, then one signed with our key. The firmware tries the disks in
// their PCI order, which is the order they are given in, so one boot shows
// each outcome in turn: a refused UKI makes the boot manager go on to the
// next disk, an accepted one starts the kernel, which reports Secure Boot
// enabled and panics for want of a root filesystem.
func TestSecureBoot(t *testing.T) {
	in := prepare(t)
	signed, err := secureboot.Sign(in.unsigned, in.ours)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := secureboot.Sign(in.unsigned, in.other)
	if err != nil {
		t.Fatal(err)
	}
	modified := bytes.Clone(signed)
	cmdlineOff := sectionOffset(t, modified, uki.SectionCmdline)
	if string(modified[cmdlineOff:cmdlineOff+len(cmdline)]) != cmdline {
		t.Fatalf("the signed UKI's %s section does not start with %q", uki.SectionCmdline, cmdline)
	}
	// "panic=-1" becomes "panic=-2": a command line the kernel would boot
	// with just the same, had the firmware not refused it.
	modified[cmdlineOff+len(cmdline)-1] = '2'

	disks := []struct {
		name  string
		image []byte
	}{
		{"unsigned UKI", in.unsigned},
		{"UKI signed with a key that is not enrolled", otherKey},
		{"UKI modified after signing", modified},
		{"UKI signed with our key", signed},
	}
	dir := t.TempDir()
	devices := []qemu.Device{qemu.OVMF{SecureBoot: true, VarsTemplate: in.vars}}
	for i, d := range disks {
		path := filepath.Join(dir, fmt.Sprintf("disk%d.img", i))
		if err := writeESPDisk(path, d.image); err != nil {
			t.Fatalf("disk with the %s: %v", d.name, err)
		}
		devices = append(devices, qemu.Disk{Path: path, ReadOnly: true})
	}

	start := time.Now()
	vm := qemu.StartT(t, qemu.Options{Name: "secureboot"}, devices...)
	c := vm.Console()
	for _, d := range disks[:len(disks)-1] {
		m, err := c.ExpectRegexp(bootTimeout, bootAttempt)
		if err != nil {
			t.Fatalf("no boot attempt of the %s: %v", d.name, err)
		}
		if m[1] != "failed to load" || !isRefusal(m[2]) {
			t.Fatalf("the firmware did not refuse the %s: %s", d.name, m[0])
		}
		t.Logf("%v: %s refused: %s", since(start), d.name, m[0])
	}
	good := disks[len(disks)-1].name
	m, err := c.ExpectRegexp(bootTimeout, bootAttempt)
	if err != nil {
		t.Fatalf("no boot attempt of the %s: %v", good, err)
	}
	if m[1] != "starting" {
		t.Fatalf("the firmware did not start the %s: %s", good, m[0])
	}
	for _, want := range []string{
		"Linux version ",
		"secureboot: Secure boot enabled",
		"Kernel panic - not syncing: VFS: Unable to mount root fs",
	} {
		line, err := c.Expect(bootTimeout, want)
		if err != nil {
			t.Fatalf("after starting the %s: %v", good, err)
		}
		t.Logf("%v: %s", since(start), line)
	}
	// The kernel got the command line from the signed UKI.
	if !strings.Contains(c.Transcript(), "Command line: "+cmdline+"\n") {
		t.Errorf("the kernel did not report the command line %q", cmdline)
	}
}

func since(t time.Time) time.Duration {
	return time.Since(t).Round(100 * time.Millisecond)
}

func isRefusal(status string) bool {
	for _, r := range refusals {
		if status == r {
			return true
		}
	}
	return false
}

// sectionOffset returns the file offset of a PE image's section.
func sectionOffset(t *testing.T, image []byte, name string) int {
	t.Helper()
	f, err := pe.NewFile(bytes.NewReader(image))
	if err != nil {
		t.Fatal(err)
	}
	s := f.Section(name)
	if s == nil {
		t.Fatalf("the UKI has no %s section", name)
	}
	return int(s.Offset)
}
