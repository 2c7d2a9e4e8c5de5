// Package gpt reads and writes GUID partition tables (GPT), the partition
// table format of UEFI, which every node disk and installer image carries.
//
// A Table is plain data: the disk GUID, the block size, the disk size and a
// slice of partitions, each with its type GUID, unique GUID, name, block
// range and attribute bits. Write lays it out as the UEFI specification
// describes it: a protective MBR in block 0, the primary header in block 1
// followed by 128 partition entries, and a copy of the entries and header in
// the last blocks of the disk, with every CRC32 filled in. Nothing is
// random or taken from the clock: GUIDs are inputs, so images built from the
// same inputs are identical. DerivedGUID makes stable GUIDs for such images;
// RandomGUID makes unique ones for real installations.
//
// Read parses a table from a disk, which may hold anything: an interrupted
// write, another operating system's data, or something crafted. It trusts no
// field before checking it against the disk size and the specification
// (signatures, CRCs, header and entry sizes, entry counts, the placement of
// the entry arrays and of every partition), allocates at most MaxEntryBytes
// for the entry array, and explains each rejection. If the primary copy is
// damaged, Read falls back to the backup and says so in its Health result,
// so the caller can decide to rewrite the table; it also reports a damaged
// or outdated backup, such as one left in the middle of a grown disk.
// GrowPartition extends a partition into the free space after it, so that
// a node written to a disk larger than its image can claim the rest of the
// disk: the table read from the grown disk, grown and written back, has its
// backup at the disk's new end.
//
// Partition numbers are slice positions: Partitions[0] is partition 1, as
// Linux and sgdisk number them. A nil entry is an unused slot, so a table
// read from a disk keeps the numbering of partitions after a gap.
package gpt
