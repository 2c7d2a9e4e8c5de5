package fat32

import "encoding/binary"

// Reserved sectors, Microsoft's FAT specification, sections 3 and 5.
const (
	fsInfoSector     = 1
	backupBootSector = 6
	// mediaFixed is the media descriptor of fixed disks, also stored in
	// the low byte of FAT entry 0.
	mediaFixed = 0xf8
	// endOfChain marks the last cluster of a file in the FAT. FAT entry 1
	// holds it too, with the flags for a cleanly unmounted volume without
	// I/O errors set.
	endOfChain = 0x0fffffff
	// freeUnknown is FSInfo's value for an unknown next free cluster.
	freeUnknown = 0xffffffff
)

// bootCode is what the boot sector's jump leads to: int 18h (boot from the
// next device) and a halt loop, in case a BIOS boots the partition itself.
var bootCode = []byte{0xcd, 0x18, 0xf4, 0xeb, 0xfd}

// bootSector returns sector 0 of the filesystem: the jump to the boot
// code, the BIOS Parameter Block and the boot signature.
func bootSector(l layout, o *options) []byte {
	b := make([]byte, l.sectorSize)
	le := binary.LittleEndian
	copy(b[0:3], []byte{0xeb, 0x58, 0x90}) // jmp 0x5a; nop
	// The OEM name recommended for compatibility with all FAT drivers.
	copy(b[3:11], "MSWIN4.1")
	le.PutUint16(b[11:], uint16(l.sectorSize))
	b[13] = byte(l.sectorsPerCluster)
	le.PutUint16(b[14:], uint16(l.reservedSectors))
	b[16] = numFATs
	// The root directory entry count and 16-bit sizes are zero on FAT32.
	b[21] = mediaFixed
	// A CHS geometry for BIOS calls (63 sectors, 255 heads), which LBA
	// disks do not use but some readers check to be set.
	le.PutUint16(b[24:], 63)
	le.PutUint16(b[26:], 255)
	le.PutUint32(b[32:], uint32(l.totalSectors))
	le.PutUint32(b[36:], uint32(l.fatSectors))
	le.PutUint32(b[44:], firstCluster) // The root directory.
	le.PutUint16(b[48:], fsInfoSector)
	le.PutUint16(b[50:], backupBootSector)
	b[64] = 0x80 // BIOS drive number of a hard disk.
	b[66] = 0x29 // The next three fields are valid.
	le.PutUint32(b[67:], o.VolumeID)
	label := o.label
	if label == "" {
		label = "NO NAME    "
	}
	copy(b[71:82], label)
	copy(b[82:90], "FAT32   ")
	copy(b[0x5a:], bootCode)
	b[510], b[511] = 0x55, 0xaa
	return b
}

// fsInfo returns the FSInfo sector, which tells drivers how many
// clusters are free and where to look for one, so that they need not scan
// the FAT.
func fsInfo(l layout, used int64) []byte {
	b := make([]byte, l.sectorSize)
	le := binary.LittleEndian
	le.PutUint32(b[0:], 0x41615252)
	le.PutUint32(b[484:], 0x61417272)
	le.PutUint32(b[488:], uint32(l.clusters-used))
	next := uint32(freeUnknown)
	if used < l.clusters {
		next = uint32(firstCluster + used)
	}
	le.PutUint32(b[492:], next)
	le.PutUint32(b[508:], 0xaa550000)
	return b
}
