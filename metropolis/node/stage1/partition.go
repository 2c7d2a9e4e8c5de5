package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// partition is a block device partition found in sysfs.
type partition struct {
	// Name is the kernel's name of the device, such as vda2.
	Name string
	// Dev is its device number, "major:minor", which device-mapper tables
	// accept without a device node.
	Dev string
}

// errNoPartition is returned by findPartition when no partition has the
// name asked for (yet).
var errNoPartition = errors.New("no such partition")

// findPartition looks through the block devices in sysRoot/class/block for
// the partition whose GPT name (PARTNAME in its uevent file) is name.
// Two partitions with the name are an error: stage-1 cannot tell which
// one the command line means, and a second disk carrying a look-alike
// system partition must not get to choose.
func findPartition(sysRoot, name string) (*partition, error) {
	dir := filepath.Join(sysRoot, "class", "block")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing block devices: %w", err)
	}
	var found []partition
	for _, e := range entries {
		vars, err := readUevent(filepath.Join(dir, e.Name(), "uevent"))
		if err != nil {
			// A device that vanished in between is not an error.
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, err
		}
		if vars["DEVTYPE"] != "partition" || vars["PARTNAME"] != name {
			continue
		}
		if vars["MAJOR"] == "" || vars["MINOR"] == "" {
			return nil, fmt.Errorf("block device %s has no device number in its uevent", e.Name())
		}
		found = append(found, partition{Name: e.Name(), Dev: vars["MAJOR"] + ":" + vars["MINOR"]})
	}
	switch len(found) {
	case 0:
		return nil, errNoPartition
	case 1:
		return &found[0], nil
	default:
		var names []string
		for _, p := range found {
			names = append(names, p.Name)
		}
		slices.Sort(names)
		return nil, fmt.Errorf("partitions %s all have the name %s; refusing to guess which one to boot", strings.Join(names, ", "), name)
	}
}

// readUevent reads the KEY=value lines of a sysfs uevent file.
func readUevent(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	vars := make(map[string]string)
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), "="); ok {
			vars[k] = v
		}
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return vars, nil
}

// waitForPartition calls findPartition until the partition appears or
// timeout passes, checking every interval. Disks appear asynchronously
// once their driver is loaded, so a missing partition is only an error
// after a while.
func waitForPartition(sysRoot, name string, timeout, interval time.Duration) (*partition, error) {
	deadline := time.Now().Add(timeout)
	for {
		p, err := findPartition(sysRoot, name)
		if !errors.Is(err, errNoPartition) {
			return p, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no partition named %s appeared within %v (block devices: %s)", name, timeout, listBlockDevices(sysRoot))
		}
		time.Sleep(interval)
	}
}

// listBlockDevices describes the block devices present, for the error
// message when the system partition is missing.
func listBlockDevices(sysRoot string) string {
	dir := filepath.Join(sysRoot, "class", "block")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, e := range entries {
		d := e.Name()
		if vars, err := readUevent(filepath.Join(dir, e.Name(), "uevent")); err == nil && vars["PARTNAME"] != "" {
			d += " (" + vars["PARTNAME"] + ")"
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}
