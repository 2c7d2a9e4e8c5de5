package devicemapper

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// IntegrityMode is how a dm-integrity target keeps data and tags consistent
// when the machine stops in the middle of a write.
type IntegrityMode byte

const (
	// IntegrityJournal writes data and tags to a journal first and then
	// to their places, so that after a crash both are either old or new:
	// every write is done twice.
	IntegrityJournal IntegrityMode = 'J'
	// IntegrityDirect writes data and tags in place, without a journal: a
	// crash can leave a block whose tag does not match, which then fails
	// to read. It suits writes that are done again after a crash, such as
	// initializing every tag of a new device.
	IntegrityDirect IntegrityMode = 'D'
)

// IntegrityTarget is a dm-integrity target: it stores a tag with every
// block of data, in metadata areas interleaved with the data on Device. In
// the form used here it computes no tags itself; the target above it, a
// dm-crypt target with an AEAD cipher (see CryptTarget.IntegrityTagSize),
// supplies them with each write and checks them with each read, so that a
// block changed behind its back fails to read.
//
// Device starts with the target's superblock at Offset. A new device is
// formatted by the kernel when its superblock's first sector is all zeros
// (see IntegrityDataSectors); the tags of its blocks are then whatever the
// disk held, so that every block fails to read until it has been written
// once through the target above.
type IntegrityTarget struct {
	// Device holds the superblock, journal, data and tags: a device path,
	// or a device number as "major:minor".
	Device string
	// Offset is the 512-byte sector of Device where the superblock is; the
	// sectors before it are left alone.
	Offset uint64
	// Sectors is the size of the target in 512-byte sectors: at most what
	// IntegrityDataSectors returns, and a multiple of BlockSize.
	Sectors uint64
	// TagSize is the number of bytes of tag per block.
	TagSize int
	// Mode is IntegrityJournal or IntegrityDirect.
	Mode IntegrityMode
	// BlockSize is the size of the blocks that carry a tag each, a power
	// of two from 512 (the default, if zero) to 4096 bytes. It must be the
	// sector size of the target above. It is fixed when the device is
	// formatted.
	BlockSize int
}

func (t *IntegrityTarget) check() error {
	switch {
	case t.Device == "":
		return errors.New("dm-integrity target has no device")
	case t.TagSize <= 0:
		return fmt.Errorf("dm-integrity tag size %d is not positive", t.TagSize)
	case t.Mode != IntegrityJournal && t.Mode != IntegrityDirect:
		return fmt.Errorf("dm-integrity mode %q is neither %q nor %q", t.Mode, IntegrityJournal, IntegrityDirect)
	}
	if b := t.BlockSize; b != 0 && (b < 512 || b > 4096 || b&(b-1) != 0) {
		return fmt.Errorf("dm-integrity block size %d is not a power of two from 512 to 4096", b)
	}
	return nil
}

// blockSectors is the block size in 512-byte sectors.
func (t *IntegrityTarget) blockSectors() uint64 {
	return uint64(max(t.BlockSize, 512) / 512)
}

// Target returns t as a table line, after checking it. Every device is
// formatted with fix_padding, the layout cryptsetup uses for new devices
// since Linux 5.4, and kept in it (the superblock records it).
func (t IntegrityTarget) Target() (Target, error) {
	if err := t.check(); err != nil {
		return Target{}, err
	}
	if t.Sectors == 0 || t.Sectors%t.blockSectors() != 0 {
		return Target{}, fmt.Errorf("dm-integrity target of %d sectors is not a positive number of %d-byte blocks", t.Sectors, max(t.BlockSize, 512))
	}
	opts := []string{"fix_padding"}
	if t.BlockSize != 0 && t.BlockSize != 512 {
		opts = append(opts, fmt.Sprintf("block_size:%d", t.BlockSize))
	}
	return Target{
		Length:     t.Sectors,
		Type:       "integrity",
		Parameters: fmt.Sprintf("%s %d %d %c %d %s", t.Device, t.Offset, t.TagSize, t.Mode, len(opts), strings.Join(opts, " ")),
	}, nil
}

// IntegrityDataSectors returns how many 512-byte sectors of data the
// dm-integrity device described by t provides, the largest t.Sectors can
// be; t.Sectors is ignored. It creates a device called name over the first
// block only, for the kernel to read the superblock, and removes it again.
//
// If the superblock's first sector is all zeros, the kernel formats the
// device on the way: it writes a superblock laid out for all of Device from
// t.Offset on, for t's tag and block size, and an empty journal.
func IntegrityDataSectors(name string, t IntegrityTarget) (sectors uint64, err error) {
	if err := t.check(); err != nil {
		return 0, fmt.Errorf("devicemapper: %w", err)
	}
	t.Sectors = t.blockSectors()
	target, err := t.Target()
	if err != nil {
		return 0, fmt.Errorf("devicemapper: %w", err)
	}
	if _, err := CreateDevice(name, false, []Target{target}); err != nil {
		return 0, err
	}
	defer func() {
		if rerr := RemoveDevice(name); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()
	status, err := TableStatus(name)
	if err != nil {
		return 0, err
	}
	if len(status) != 1 {
		return 0, fmt.Errorf("devicemapper: status of %q has %d targets, want 1", name, len(status))
	}
	return parseIntegrityStatus(status[0].Parameters)
}

// parseIntegrityStatus returns the number of data sectors from the status
// of a dm-integrity target: "<mismatches> <data sectors> <recalculated up
// to sector, or ->".
func parseIntegrityStatus(status string) (uint64, error) {
	fields := strings.Fields(status)
	if len(fields) < 2 {
		return 0, fmt.Errorf("devicemapper: dm-integrity status %q has no data size", status)
	}
	n, err := strconv.ParseUint(fields[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("devicemapper: dm-integrity status %q: data size: %w", status, err)
	}
	return n, nil
}
