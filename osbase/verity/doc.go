// Package verity builds and checks dm-verity hash trees, the format the Linux
// device-mapper "verity" target uses to make a read-only block device
// tamper-evident.
//
// # dm-verity
//
// The kernel's verity target sits between a filesystem and the device holding
// it. It checks every block it reads against a tree of SHA-256 hashes whose
// root hash it is given in its mapping table, and fails the read (or panics or
// restarts the machine, as configured) when a block does not match. Metropolis
// nodes mount their root filesystem this way: the root hash travels in the
// kernel command line inside the unified kernel image, so trusting that
// image is enough to trust every byte of the root filesystem, however
// large, without reading it all at boot.
//
// # The hash tree
//
// This package implements format version 1 with SHA-256 and 4096-byte data and
// hash blocks (BlockSize). Every hash covers a salt followed by one block:
// SHA-256(salt || block). The salt makes trees of different images unrelated
// even where their blocks are equal, so precomputed collisions for one image
// are useless against another.
//
// Level 0 of the tree holds the hashes of the data blocks, 128 32-byte hashes
// per 4096-byte hash block, the last block of a level padded with zeros. Each
// level above holds the hashes of the blocks of the level below, up to a level
// of a single block, whose hash is the root hash. An image of a single data
// block has no tree at all: its root hash is the hash of that block, as with
// the kernel and veritysetup, which both need ceil(log128(data blocks)) levels.
//
// On the hash device the levels are stored top down: the single block of the
// highest level first, then the next lower level, down to level 0. The kernel
// finds them all from the number of data blocks and the hash start block, the
// block of the hash device where the tree begins. The usual layout, and the
// one the node uses, keeps data and tree in one partition: the data image
// followed directly by its tree, so that the hash start block equals the
// number of data blocks.
//
// # No superblock on the node
//
// veritysetup normally puts a 512-byte superblock (padded to one hash block)
// in front of the tree that records the block sizes, the number of data
// blocks, the algorithm and the salt, so that a mapping can be set up from the
// device and a root hash alone. Encoder writes it on request (Options), for
// tools that expect it. The node does not use one: the mapping table on the
// kernel command line carries every parameter, and it is part of the kernel
// image that is trusted anyway, whereas a superblock would be one more, unauthenticated source
// of the same facts that the kernel ignores anyway and that could only ever
// disagree with the table.
//
// # This package
//
// Encoder computes the tree of a data image written through it, in a single
// streaming pass with memory proportional to the size of the tree (about 1/128
// of the image), and writes it out when closed. MappingTable is the kernel's
// table line, with a strict parser (ParseMappingTable) for tables read from
// the kernel command line. Verify checks an image and its tree against a
// table the way the kernel would, in userspace, to self-check builds and in
// tests.
package verity
