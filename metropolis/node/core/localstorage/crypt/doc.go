// Package crypt sets up a node's data partition as a block device holding
// its filesystem, in one of the three modes of NodeStorageSecurity, and
// tells a wrong key from a right one before it touches the partition.
//
// # Layout
//
// The first MiB of the partition holds a header (see header.go): a magic
// value, the mode the partition was formatted in and a key check value,
// an HMAC of the header under a key derived from the data key. Everything
// after that MiB is the payload, mapped with device-mapper according to
// the mode:
//
//   - INSECURE: a linear mapping of the payload, the filesystem in plain
//     text.
//   - ENCRYPTED: dm-crypt with aes-xts-plain64 and a 512-bit key (AES-256
//     in XTS mode), 4 KiB sectors with IVs counted in them, discards
//     allowed.
//   - AUTHENTICATED_ENCRYPTED: dm-integrity on the payload, with a 28-byte
//     tag per 4 KiB block and a journal, below dm-crypt with the AEAD
//     capi:gcm(aes)-random (AES-256-GCM with a random 96-bit IV per write)
//     storing IV and tag in the integrity metadata (integrity:28:aead).
//
// Map reads the header and checks the mode and the key before it creates
// any device: a wrong key, a partition never formatted, or one formatted in
// another mode is reported as such (ErrWrongKey, ErrNotFormatted, or a mode
// mismatch), and the partition is left exactly as it was. Without the
// check, a wrong key would only show as a filesystem that fails to mount,
// and dm-integrity would already have replayed its journal onto the disk.
// The check value reveals nothing about the key: it is an HMAC under a key
// derived separately from the data key, and the data key is random.
//
// # Keys
//
// The data key is 32 bytes, the XOR of the node unlock key (NUK, sealed on
// the node) and the cluster unlock key (CUK, held by the cluster); see
// DataKey. The cipher keys and the check key are derived from it with
// HKDF-SHA256 and a label per use, so that no two uses share a key: 64
// bytes for XTS, which splits them into a data and a tweak key, 32 for
// GCM. The keys reach the kernel through its key retention service, never
// in a device-mapper table (see devicemapper.CreateCryptDevice).
//
// # Why these ciphers
//
// XTS is the standard length-preserving mode for disks: each 4 KiB sector
// is encrypted on its own, with its number as the tweak, so the plain64 IV
// mode suffices (ESSIV exists for CBC, whose IVs must be unpredictable; an
// XTS tweak is encrypted with its own key already). It does not detect
// changes: an attacker cannot read the data, but can put back old sectors
// or scramble some. Discards are passed down so that SSDs keep their
// performance and wear levelling, at the cost of showing which blocks are
// free.
//
// The authenticated mode detects every change: a block whose data or tag
// was changed, swapped with another block or replaced by an older copy
// fails to read (EILSEQ/EIO) instead of returning forged data. GCM is the
// AEAD the kernel accelerates everywhere (AES-NI and PCLMULQDQ on x86).
// Its random 96-bit IVs bound how much one key may encrypt: NIST's limit of
// 2^32 encryptions means 16 TiB of writes (in 4 KiB sectors) per key,
// after which IV collisions become likely enough to matter; a node that
// rewrites its disk this much needs a new key, that is, a new data
// partition. No discards: they would drop blocks' tags, and dm-integrity
// with a tag per block gains nothing from them.
//
// dm-integrity formats its metadata in place but leaves the tags of all
// blocks as the disk had them, so that every block fails to read until it
// has been written once. Format therefore writes zeros to the whole
// payload through dm-crypt, which writes a valid tag with each block, with
// dm-integrity in direct mode (no journal) so that each block is written
// once rather than twice; afterwards the devices are made again with the
// journal. There is no shortcut: dm-integrity's recalculation of tags works
// only for tags it computes itself, not for an AEAD's, and a filesystem
// reading a block it never wrote (mkfs probing for old signatures, a
// read-ahead) would otherwise fail. This costs one full write of the
// partition on the node's first boot.
package crypt
