// Package erofs writes EROFS images, the read-only filesystem of the node's
// system partition, from a structfs.Tree.
//
// The on-disk format is produced by github.com/erofs/go-erofs, a pure Go
// writer whose images the kernel mounts; this package feeds it a tree and
// pins every setting that could make two images of the same tree differ.
// The result is reproducible, which the dm-verity root hash of the system
// partition depends on: the superblock has a zero UUID and the build time
// from Options, every inode has that same time as mtime (so compact 32-byte
// inodes suffice unless an ID or size needs the extended form), inodes and
// data are laid out in the tree's walk order, and directory entries are
// sorted by name, as the kernel's lookup requires.
//
// Images are uncompressed with 4 KiB blocks: Linux 6.1 mounts only images
// whose block size is the page size, 4 KiB on x86-64. Compression would save
// space on the system partition but cost CPU time at every read during
// boot; it can be added here when the partition size starts to matter.
package erofs
