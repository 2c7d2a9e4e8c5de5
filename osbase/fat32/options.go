package fat32

import (
	"fmt"
	"strings"
	"time"
)

// Options describe the filesystem to write.
type Options struct {
	// Label is the volume label: at most 11 characters of those allowed in
	// short names (upper case letters, digits, space and !#$%&'()-@^_`{}~).
	// Empty means no label.
	Label string
	// VolumeID is the volume serial number. Tools usually take it from the
	// clock; it is an input here so that images are reproducible.
	VolumeID uint32
	// BlockSize is the sector size in bytes: 512, 1024, 2048 or 4096. It
	// should be the logical block size of the disk. Zero means 512.
	BlockSize int64
	// BlockCount is the size of the filesystem in sectors of BlockSize.
	// SizeFS ignores it.
	BlockCount int64
	// SectorsPerCluster is the cluster size in sectors, a power of two, for
	// clusters of at most 32 KiB. Zero chooses the size Microsoft's tools
	// choose for a volume of this size, or if the tree does not fit that
	// way, another one it fits with.
	SectorsPerCluster int64
	// ModTime is the creation, modification and access time of every file
	// and directory, between 1980 and 2107, with FAT's resolution of 2
	// seconds for the modification time. FAT stores no time zone: the
	// date and time are taken as they read in ModTime's location. The zero
	// value means the FAT epoch, 1980-01-01 00:00:00.
	ModTime time.Time
}

// maxClusterSize is the largest cluster size all FAT implementations read.
const maxClusterSize = 32 << 10

// options are Options checked, with defaults filled in.
type options struct {
	Options
	// label is the label padded to 11 bytes, or empty for none.
	label string
	time  timestamp
}

// check validates o and fills in its defaults.
func (o Options) check() (*options, error) {
	c := &options{Options: o}
	if c.BlockSize == 0 {
		c.BlockSize = 512
	}
	switch c.BlockSize {
	case 512, 1024, 2048, 4096:
	default:
		return nil, fmt.Errorf("block size %d is not 512, 1024, 2048 or 4096", o.BlockSize)
	}
	if spc := c.SectorsPerCluster; spc != 0 && (spc < 0 || spc&(spc-1) != 0 || spc*c.BlockSize > maxClusterSize) {
		return nil, fmt.Errorf("%d sectors per cluster is not a power of two giving clusters of at most %d bytes", spc, maxClusterSize)
	}
	if c.Label != "" {
		if err := checkLabel(c.Label); err != nil {
			return nil, err
		}
		c.label = c.Label + strings.Repeat(" ", 11-len(c.Label))
	}
	modTime := c.ModTime
	if modTime.IsZero() {
		modTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	var err error
	if c.time, err = newTimestamp(modTime); err != nil {
		return nil, err
	}
	return c, nil
}

// checkLabel tells why label cannot be a volume label, or returns nil.
func checkLabel(label string) error {
	if len(label) > 11 {
		return fmt.Errorf("label %q is longer than 11 characters", label)
	}
	if label[0] == ' ' {
		return fmt.Errorf("label %q starts with a space", label)
	}
	for _, r := range label {
		if r != ' ' && !isShortChar(r) {
			return fmt.Errorf("label %q has the character %q, but labels hold only upper case letters, digits, spaces and !#$%%&'()-@^_`{}~", label, r)
		}
	}
	return nil
}
