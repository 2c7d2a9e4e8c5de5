package main

import (
	"fmt"
	"strconv"
	"strings"

	"metropolis.dev/osbase/bootparam"
	"metropolis.dev/osbase/devicemapper"
	"metropolis.dev/osbase/verity"
)

// Kernel command line parameters stage-1 reads.
const (
	// paramSlot names the A/B slot the UKI belongs to: "A" or "B". Each
	// slot's UKI is built with its own value.
	paramSlot = "metropolis.slot"
	// paramDMCreate is the kernel's dm-mod.create parameter (see
	// build/uki.AppendVerityRoot), which Debian's kernel ignores because
	// its device-mapper is a module: stage-1 sets the device up instead.
	paramDMCreate = "dm-mod.create"
)

// verityDeviceName is the only device-mapper device stage-1 accepts in
// dm-mod.create: the root filesystem.
const verityDeviceName = "rootfs"

// partitionLabelPrefix is how the verity table names the system partition
// of a slot: PARTLABEL=METROPOLIS-SYSTEM-<slot>.
const partitionLabelPrefix = "PARTLABEL=METROPOLIS-SYSTEM-"

// bootConfig is what stage-1 takes from the (measured, signed) kernel
// command line.
type bootConfig struct {
	// Slot is "A" or "B".
	Slot string
	// PartitionName is the GPT name of the slot's system partition.
	PartitionName string
	// Table maps the system partition; its devices still name the
	// partition by label.
	Table *verity.MappingTable
}

// parseBootConfig reads the boot configuration from a kernel command line.
// It accepts exactly one dm-mod.create device, read-only, named rootfs,
// holding one verity table whose data and hash device are both the system
// partition of the slot named by metropolis.slot.
func parseBootConfig(cmdline string) (*bootConfig, error) {
	c, err := bootparam.Parse(cmdline)
	if err != nil {
		return nil, fmt.Errorf("parsing kernel command line: %w", err)
	}
	slot, ok, err := c.Lookup(paramSlot)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("kernel command line has no %s parameter", paramSlot)
	}
	if slot != "A" && slot != "B" {
		return nil, fmt.Errorf("%s=%q: want A or B", paramSlot, slot)
	}
	dm, ok, err := c.Lookup(paramDMCreate)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("kernel command line has no %s parameter with the verity table", paramDMCreate)
	}
	table, err := parseDMCreate(dm)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", paramDMCreate, err)
	}
	wantDev := partitionLabelPrefix + slot
	if table.DataDevice != wantDev || table.HashDevice != wantDev {
		return nil, fmt.Errorf("verity table maps %s with hashes on %s, want both on %s for slot %s", table.DataDevice, table.HashDevice, wantDev, slot)
	}
	return &bootConfig{
		Slot:          slot,
		PartitionName: strings.TrimPrefix(wantDev, "PARTLABEL="),
		Table:         table,
	}, nil
}

// parseDMCreate parses the value of dm-mod.create, in the kernel's
// format name,uuid,minor,flags,table[,table...][;next device...], for the
// one form stage-1 accepts: "rootfs,,,ro,<verity table>".
func parseDMCreate(s string) (*verity.MappingTable, error) {
	if strings.Contains(s, ";") {
		return nil, fmt.Errorf("more than one device, want only %s", verityDeviceName)
	}
	f := strings.SplitN(s, ",", 5)
	if len(f) != 5 {
		return nil, fmt.Errorf("%q: want name,uuid,minor,flags,table", s)
	}
	if f[0] != verityDeviceName || f[1] != "" || f[2] != "" || f[3] != "ro" {
		return nil, fmt.Errorf("device %q: want %q,,,ro,<table>", strings.Join(f[:4], ","), verityDeviceName)
	}
	if strings.Contains(f[4], ",") {
		return nil, fmt.Errorf("more than one table, want a single verity target")
	}
	table, err := verity.ParseMappingTable(f[4])
	if err != nil {
		return nil, fmt.Errorf("verity table: %w", err)
	}
	return table, nil
}

// verityTarget returns the device-mapper target for table with both its
// devices replaced by dev, the partition found for the label the table
// names.
func verityTarget(table *verity.MappingTable, dev string) (devicemapper.Target, error) {
	t := *table
	t.DataDevice, t.HashDevice = dev, dev
	if err := t.Validate(); err != nil {
		return devicemapper.Target{}, fmt.Errorf("verity table for %s: %w", dev, err)
	}
	// The line is "0 <sectors> verity <parameters...>".
	f := strings.Fields(t.String())
	if len(f) < 4 || f[0] != "0" || f[2] != "verity" {
		return devicemapper.Target{}, fmt.Errorf("unexpected verity table line %q", t.String())
	}
	length, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return devicemapper.Target{}, fmt.Errorf("verity table length: %w", err)
	}
	return devicemapper.Target{Length: length, Type: "verity", Parameters: strings.Join(f[3:], " ")}, nil
}
