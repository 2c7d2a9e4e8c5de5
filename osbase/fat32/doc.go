// Package fat32 writes FAT32 filesystems from a structfs.Tree, for the EFI
// System Partition from which the firmware boots a node, and for installer
// media.
//
// The UEFI firmware reads the ESP with its own FAT driver (EDK2's, under
// OVMF), so the output sticks to what every FAT implementation reads: a
// standard BIOS Parameter Block with media type 0xF8, at least 32 reserved
// sectors holding the boot sector, the FSInfo sector and their backups at
// sectors 6 and 7, two FATs, and a data area aligned to the cluster size. FAT32 is
// the variant the UEFI specification requires for fixed disks, and readers
// tell FAT12, FAT16 and FAT32 apart by the number of clusters alone, so a
// filesystem always has at least 65525 clusters: FAT32 needs 32.5 MiB with
// 512-byte sectors and 256.6 MiB with 4096-byte ones. SizeFS gives the
// smallest size for a tree; WriteFS explains when a size is too small.
//
// Names are stored as the VFAT long file name extension stores them: a
// name that is not a valid 8.3 name in upper case gets long name entries
// with its exact spelling, and a unique 8.3 short name derived from it
// ("LONGFI~1.TXT"), which is what old readers and the firmware's boot path
// lookup fall back to. FAT compares names case-insensitively, so a
// directory must not hold two names that differ only in case; neither may
// a name hold characters FAT forbids, or end in a dot or space, which
// Windows and Linux strip. Such names are errors, not silently changed.
//
// FAT has no owners, permissions, links or device nodes: modes and owners
// of the tree are dropped, and symbolic links and devices are errors that
// name the offending path.
//
// The output is reproducible. Every timestamp is Options.ModTime (the FAT
// epoch, 1980-01-01, by default), the volume ID is an input, short names
// depend only on the sorted names of a directory, and clusters are
// allocated contiguously in the tree's walk order, so files are never
// fragmented. WriteFS writes every reserved sector, the whole of both FATs
// and every allocated cluster, including the slack after a file's end; it
// leaves free clusters alone, so that writing into a zeroed region (a new
// sparse file, a discarded partition) gives identical bytes every time.
package fat32
