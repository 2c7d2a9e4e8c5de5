// Package structfs describes a filesystem as a tree in memory, for the image
// writers (cpio for the initramfs, erofs for the system partition) to
// serialize.
//
// Building an image in two steps, first the tree and then the bytes, keeps
// the writers simple and the output reproducible. A Tree has no timestamps,
// no inode numbers and no host-specific ownership: every byte a writer emits
// follows from the placed nodes and the writer's options, and Walk visits the
// nodes in one fixed order (depth first, children sorted by name), whatever
// order they were placed in. The same inputs therefore give the same image,
// which is what lets a dm-verity root hash or an initramfs be compared across
// builds.
//
// A Tree holds directories, regular files, symbolic links and character and
// block device nodes. Hard links, FIFOs, sockets and extended attributes are
// left out on purpose: nothing in a node image needs them. The content of a
// regular file is a Blob, either bytes in memory or a host file that is only
// read when an image is written, so a tree describing a large root
// filesystem costs little memory. PlaceHostDir adds a whole host directory,
// such as the kernel modules, owned by root whoever owns it on the host.
//
// Paths are absolute and clean ("/etc/hosts"). Place creates missing parent
// directories (mode 0555, owned by root) and refuses conflicts: a second
// node at the same path, or a node below something that is not a directory.
// Placing a directory where such an implicit parent already is sets that
// directory's metadata, so the order of Place calls never matters.
package structfs
