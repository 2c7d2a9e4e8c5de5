// Package cpio writes cpio archives in the "newc" format (magic 070701), the
// format the Linux kernel unpacks as initramfs, from a structfs.Tree.
//
// The archive is reproducible: entries come in the tree's walk order, inode
// numbers are assigned sequentially from 1 in that order, every entry has
// the same modification time (Options.ModTime) and the link counts are what
// a filesystem would report (2 plus subdirectories for directories, 1
// otherwise). The root directory is stored as ".", so that the initramfs
// root gets the tree's root mode and owner. Hard links are never written:
// the kernel treats entries with a link count of 2 or more as hard link
// candidates only for regular files, which always have a count of 1 here.
//
// WriteCompressed wraps the archive in a single zstd frame, which kernels
// built with CONFIG_RD_ZSTD unpack. See its comment for the settings that
// keep it both reproducible and small enough to decompress at early boot.
package cpio
