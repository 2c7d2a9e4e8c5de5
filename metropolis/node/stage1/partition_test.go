package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// addBlockDevice adds a block device with the given uevent lines to a fake
// sysfs at root.
func addBlockDevice(t *testing.T, root, name string, uevent ...string) {
	t.Helper()
	dir := filepath.Join(root, "class", "block", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "uevent"), []byte(strings.Join(uevent, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func fakeSysfs(t *testing.T) string {
	root := t.TempDir()
	addBlockDevice(t, root, "vda", "MAJOR=254", "MINOR=0", "DEVNAME=vda", "DEVTYPE=disk", "DISKSEQ=1")
	addBlockDevice(t, root, "vda1", "MAJOR=254", "MINOR=1", "DEVNAME=vda1", "DEVTYPE=partition", "PARTN=1", "PARTNAME=ESP")
	addBlockDevice(t, root, "vda2", "MAJOR=254", "MINOR=2", "DEVNAME=vda2", "DEVTYPE=partition", "PARTN=2", "PARTNAME=METROPOLIS-SYSTEM-A")
	addBlockDevice(t, root, "vda3", "MAJOR=254", "MINOR=3", "DEVNAME=vda3", "DEVTYPE=partition", "PARTN=3", "PARTNAME=METROPOLIS-SYSTEM-B")
	return root
}

func TestFindPartition(t *testing.T) {
	root := fakeSysfs(t)
	p, err := findPartition(root, "METROPOLIS-SYSTEM-B")
	if err != nil {
		t.Fatal(err)
	}
	if *p != (partition{Name: "vda3", Dev: "254:3"}) {
		t.Errorf("got %+v, want vda3 254:3", *p)
	}
	if _, err := findPartition(root, "METROPOLIS-SYSTEM"); !errors.Is(err, errNoPartition) {
		t.Errorf("prefix of a name: got %v, want errNoPartition", err)
	}
	// A whole disk is never taken for a partition, whatever its uevent
	// says.
	addBlockDevice(t, root, "vdb", "MAJOR=254", "MINOR=16", "DEVTYPE=disk", "PARTNAME=ESP2")
	if _, err := findPartition(root, "ESP2"); !errors.Is(err, errNoPartition) {
		t.Errorf("disk: got %v, want errNoPartition", err)
	}
}

func TestFindPartitionDuplicate(t *testing.T) {
	root := fakeSysfs(t)
	addBlockDevice(t, root, "vdb2", "MAJOR=254", "MINOR=18", "DEVTYPE=partition", "PARTN=2", "PARTNAME=METROPOLIS-SYSTEM-A")
	_, err := findPartition(root, "METROPOLIS-SYSTEM-A")
	if err == nil || !strings.Contains(err.Error(), "vda2, vdb2") {
		t.Errorf("got %v, want an error naming vda2 and vdb2", err)
	}
}

func TestWaitForPartition(t *testing.T) {
	root := fakeSysfs(t)
	if err := os.Remove(filepath.Join(root, "class", "block", "vda3", "uevent")); err != nil {
		t.Fatal(err)
	}
	if _, err := findPartition(root, "METROPOLIS-SYSTEM-B"); !errors.Is(err, errNoPartition) {
		t.Fatalf("before the partition appears: got %v, want errNoPartition", err)
	}
	// The partition appears while waitForPartition polls.
	done := make(chan struct{})
	go func() {
		defer close(done)
		addBlockDevice(t, root, "vda3", "MAJOR=254", "MINOR=3", "DEVTYPE=partition", "PARTNAME=METROPOLIS-SYSTEM-B")
	}()
	p, err := waitForPartition(root, "METROPOLIS-SYSTEM-B", 10*time.Second, time.Millisecond)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "vda3" {
		t.Errorf("got %s, want vda3", p.Name)
	}

	_, err = waitForPartition(root, "METROPOLIS-NODE-DATA", 20*time.Millisecond, time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "vda2 (METROPOLIS-SYSTEM-A)") {
		t.Errorf("got %v, want a timeout listing the block devices", err)
	}
}
