package verity

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Optional parameters of the verity target that MappingTable supports: the
// ones without arguments that the node's kernel (Linux 6.1) knows. Those that
// take arguments (forward error correction, root hash signatures) are not
// supported, as the node uses neither.
const (
	// IgnoreCorruption logs corrupted blocks but returns them anyway.
	IgnoreCorruption = "ignore_corruption"
	// RestartOnCorruption restarts the machine on the first corrupted block.
	RestartOnCorruption = "restart_on_corruption"
	// PanicOnCorruption panics the kernel on the first corrupted block.
	PanicOnCorruption = "panic_on_corruption"
	// IgnoreZeroBlocks returns zeros for blocks whose expected hash is that
	// of a block of zeros, without reading or checking them.
	IgnoreZeroBlocks = "ignore_zero_blocks"
	// CheckAtMostOnce checks each data block only the first time it is read.
	CheckAtMostOnce = "check_at_most_once"
	// TryVerifyInTasklet checks blocks in softirq context when their hashes
	// are cached, for lower read latency.
	TryVerifyInTasklet = "try_verify_in_tasklet"
)

// corruptionModes are the optional parameters that choose what happens on
// corruption; the kernel accepts at most one of them.
var corruptionModes = []string{IgnoreCorruption, RestartOnCorruption, PanicOnCorruption}

var knownParameters = map[string]bool{
	IgnoreCorruption:    true,
	RestartOnCorruption: true,
	PanicOnCorruption:   true,
	IgnoreZeroBlocks:    true,
	CheckAtMostOnce:     true,
	TryVerifyInTasklet:  true,
}

// maxBlocks is the largest number of blocks whose length in 512-byte
// sectors still fits an int64, the kernel's limit for both the data size and
// the hash start.
const maxBlocks = math.MaxInt64 / sectorsPerBlock

// tableFields is the number of fields of a table line without optional
// parameters.
const tableFields = 13

// MappingTable is the device-mapper table line of a verity target, the form
// dmsetup and the kernel's dm-mod.create= parameter take:
//
//	0 <sectors> verity 1 <data_dev> <hash_dev> 4096 4096 <data_blocks> <hash_start_block> sha256 <root_hex> <salt_hex> [<#opt_params> <opt_params>...]
//
// The target always starts at sector 0 and covers the whole data image, so
// its length in sectors follows from DataBlocks. The version, block sizes and
// algorithm are fixed by this package.
type MappingTable struct {
	// DataDevice and HashDevice name the devices holding the data image
	// and the tree, in any form the kernel accepts: a path, major:minor, or
	// at boot PARTUUID=... or PARTLABEL=.... They may be the same device.
	DataDevice string
	HashDevice string
	// DataBlocks is the size of the data image in blocks.
	DataBlocks int64
	// HashStartBlock is the block of the hash device where the tree starts.
	// When data and tree share a device, it is at least DataBlocks.
	HashStartBlock int64
	RootHash       [sha256.Size]byte
	// Salt is empty for a tree without salt.
	Salt []byte
	// OptionalParameters are the names of optional parameters to set, from
	// the constants above, each at most once and at most one of the
	// corruption modes.
	OptionalParameters []string
}

// String renders t as a table line. It does not check t: a table that fails
// Validate renders as a line the kernel and ParseMappingTable reject.
func (t *MappingTable) String() string {
	salt := "-"
	if len(t.Salt) > 0 {
		salt = hex.EncodeToString(t.Salt)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "0 %d verity 1 %s %s %d %d %d %d sha256 %x %s",
		t.DataBlocks*sectorsPerBlock, t.DataDevice, t.HashDevice, BlockSize, BlockSize,
		t.DataBlocks, t.HashStartBlock, t.RootHash, salt)
	if len(t.OptionalParameters) > 0 {
		fmt.Fprintf(&b, " %d %s", len(t.OptionalParameters), strings.Join(t.OptionalParameters, " "))
	}
	return b.String()
}

// Validate checks that t is a table this package can render and that the
// kernel accepts.
func (t *MappingTable) Validate() error {
	if err := checkDevice(t.DataDevice); err != nil {
		return fmt.Errorf("verity table: data device: %w", err)
	}
	if err := checkDevice(t.HashDevice); err != nil {
		return fmt.Errorf("verity table: hash device: %w", err)
	}
	if t.DataBlocks < 1 || t.DataBlocks > maxBlocks {
		return fmt.Errorf("verity table: %d data blocks, want 1 to %d", t.DataBlocks, int64(maxBlocks))
	}
	if t.HashStartBlock < 0 || t.HashStartBlock > maxBlocks {
		return fmt.Errorf("verity table: hash start block %d, want 0 to %d", t.HashStartBlock, int64(maxBlocks))
	}
	if t.DataDevice == t.HashDevice && t.HashStartBlock < t.DataBlocks {
		return fmt.Errorf("verity table: hash tree at block %d overlaps the %d data blocks on the same device %s",
			t.HashStartBlock, t.DataBlocks, t.DataDevice)
	}
	if len(t.Salt) > MaxSaltSize {
		return fmt.Errorf("verity table: salt of %d bytes is longer than the maximum of %d", len(t.Salt), MaxSaltSize)
	}
	seen := make(map[string]bool)
	mode := ""
	for _, p := range t.OptionalParameters {
		if !knownParameters[p] {
			return fmt.Errorf("verity table: unsupported optional parameter %q", p)
		}
		if seen[p] {
			return fmt.Errorf("verity table: optional parameter %s given twice", p)
		}
		seen[p] = true
		for _, m := range corruptionModes {
			if p != m {
				continue
			}
			if mode != "" {
				return fmt.Errorf("verity table: conflicting corruption modes %s and %s", mode, p)
			}
			mode = p
		}
	}
	return nil
}

// checkDevice accepts device names that survive the trip through the kernel
// command line and dm-mod.create=: printable ASCII without spaces, and
// without the characters that quote (") or escape (\) there or separate
// tables (,) and devices (;).
func checkDevice(dev string) error {
	if dev == "" {
		return errors.New("empty name")
	}
	for i := 0; i < len(dev); i++ {
		c := dev[i]
		if c <= ' ' || c > '~' || strings.IndexByte(`",;\`, c) >= 0 {
			return fmt.Errorf("name %q contains %q, which is not allowed", dev, c)
		}
	}
	return nil
}

// ParseMappingTable parses a verity table line as String renders it, for
// example from the kernel command line. It is strict: it accepts only what
// this package supports (format version 1, SHA-256, 4096-byte blocks, a
// single target covering the whole data image, known optional parameters)
// and numbers without sign or leading zeros, and checks the result with
// Validate. Fields may be separated by any ASCII white space, as for the
// kernel.
func ParseMappingTable(s string) (*MappingTable, error) {
	f := strings.FieldsFunc(s, isASCIISpace)
	if len(f) < tableFields {
		return nil, fmt.Errorf("verity table: %d fields, want at least %d", len(f), tableFields)
	}
	for _, lit := range []struct {
		i          int
		name, want string
	}{
		{0, "start sector", "0"},
		{2, "target type", "verity"},
		{3, "format version", "1"},
		{6, "data block size", strconv.Itoa(BlockSize)},
		{7, "hash block size", strconv.Itoa(BlockSize)},
		{10, "hash algorithm", "sha256"},
	} {
		if f[lit.i] != lit.want {
			return nil, fmt.Errorf("verity table: %s is %q, only %q is supported", lit.name, f[lit.i], lit.want)
		}
	}

	t := &MappingTable{DataDevice: f[4], HashDevice: f[5]}
	var err error
	if t.DataBlocks, err = parseNumber("data blocks", f[8]); err != nil {
		return nil, err
	}
	if t.HashStartBlock, err = parseNumber("hash start block", f[9]); err != nil {
		return nil, err
	}
	sectors, err := parseNumber("length", f[1])
	if err != nil {
		return nil, err
	}
	// An out-of-range block count is reported by Validate below; only one in
	// range can be converted to sectors without overflow.
	if t.DataBlocks <= maxBlocks && sectors != t.DataBlocks*sectorsPerBlock {
		return nil, fmt.Errorf("verity table: length of %d sectors does not cover exactly the %d data blocks (%d sectors)",
			sectors, t.DataBlocks, t.DataBlocks*sectorsPerBlock)
	}

	if len(f[11]) != 2*sha256.Size {
		return nil, fmt.Errorf("verity table: root hash %q is not %d hex digits", f[11], 2*sha256.Size)
	}
	if _, err := hex.Decode(t.RootHash[:], []byte(f[11])); err != nil {
		return nil, fmt.Errorf("verity table: root hash: %w", err)
	}
	if f[12] != "-" {
		if len(f[12]) > 2*MaxSaltSize {
			return nil, fmt.Errorf("verity table: salt of %d hex digits is longer than the maximum of %d", len(f[12]), 2*MaxSaltSize)
		}
		if t.Salt, err = hex.DecodeString(f[12]); err != nil {
			return nil, fmt.Errorf("verity table: salt: %w", err)
		}
	}

	if len(f) > tableFields {
		n, err := parseNumber("optional parameter count", f[tableFields])
		if err != nil {
			return nil, err
		}
		params := f[tableFields+1:]
		if n != int64(len(params)) {
			return nil, fmt.Errorf("verity table: %d optional parameters announced, %d given", n, len(params))
		}
		if n > 0 {
			t.OptionalParameters = params
		}
	}

	if err := t.Validate(); err != nil {
		return nil, err
	}
	return t, nil
}

// isASCIISpace is the kernel's isspace, the separator of table fields.
func isASCIISpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return false
}

// parseNumber parses a non-negative decimal number in canonical form.
func parseNumber(name, s string) (int64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("verity table: %s %q is not a decimal number without sign or leading zeros", name, s)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("verity table: %s: %w", name, err)
	}
	return n, nil
}
