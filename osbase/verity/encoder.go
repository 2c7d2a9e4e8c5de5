package verity

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
)

const (
	// BlockSize is the size of data blocks and of hash blocks, in bytes. A
	// data image must be a whole number of blocks.
	BlockSize = 4096
	// DefaultSaltSize is the size of the salt an Encoder makes up when none
	// is given, and of the salt DeriveSalt returns.
	DefaultSaltSize = 64
	// MaxSaltSize is the largest salt accepted, the space a superblock has
	// for it.
	MaxSaltSize = 256

	digestSize      = sha256.Size
	hashesPerBlock  = BlockSize / digestSize
	sectorSize      = 512
	sectorsPerBlock = BlockSize / sectorSize
)

// Options configure an Encoder. The zero value is what the node uses: a
// random salt and no superblock.
type Options struct {
	// Salt is hashed in front of every block. nil stands for DefaultSaltSize
	// random bytes from crypto/rand. Reproducible builds pass a fixed salt,
	// for example one from DeriveSalt, so that the same image always gets
	// the same tree and root hash. A non-nil empty salt means no salt.
	Salt []byte
	// Superblock makes the encoder write a veritysetup superblock, padded
	// to one hash block, in front of the tree. The node does not use one
	// (see the package documentation); tools that open a verity device from
	// its superblock need it.
	Superblock bool
	// SuperblockUUID is the UUID the superblock records. The zero UUID
	// stands for a random one. It is not used without Superblock.
	SuperblockUUID [16]byte
}

// Encoder computes the hash tree of a data image written to it and writes
// the tree to an io.Writer when closed.
//
// It keeps the hashes of all data blocks until then, since the tree is
// written top level first and the top is only known at the end: that is
// 32 bytes per 4096-byte block, about 32 MiB for a 4 GiB image. The data itself
// passes through without being kept, so a caller that wants data and tree
// in one file copies the data to that file and to the Encoder at once (see
// io.MultiWriter) and closes the Encoder last.
type Encoder struct {
	w          io.Writer
	salt       []byte
	superblock bool
	uuid       [16]byte
	hasher     *hasher

	// partial holds the start of a data block that is not complete yet.
	partial    [BlockSize]byte
	partialLen int
	dataBlocks int64
	// level0 holds the hashes of all data blocks written so far.
	level0 []byte

	closed bool
	// done tells whether Close succeeded, so root is valid.
	done bool
	root [digestSize]byte
}

// NewEncoder returns an Encoder that writes the hash tree of the data
// written to it to w, preceded by a superblock if opts ask for one.
func NewEncoder(w io.Writer, opts Options) (*Encoder, error) {
	e := &Encoder{w: w, superblock: opts.Superblock, uuid: opts.SuperblockUUID}
	switch {
	case opts.Salt == nil:
		e.salt = make([]byte, DefaultSaltSize)
		// crypto/rand.Read never fails: it crashes the program rather
		// than return an error.
		rand.Read(e.salt)
	case len(opts.Salt) > MaxSaltSize:
		return nil, fmt.Errorf("verity: salt of %d bytes is longer than the maximum of %d", len(opts.Salt), MaxSaltSize)
	default:
		// A copy, so that a caller reusing its slice cannot change the
		// salt halfway through.
		e.salt = bytes.Clone(opts.Salt)
	}
	e.hasher = newHasher(e.salt)
	if e.superblock && e.uuid == [16]byte{} {
		rand.Read(e.uuid[:])
	}
	return e, nil
}

var errClosed = errors.New("verity: encoder already closed")

// Write hashes p as the next part of the data image. It never fails before
// Close.
func (e *Encoder) Write(p []byte) (int, error) {
	if e.closed {
		return 0, errClosed
	}
	n := len(p)
	if e.partialLen > 0 {
		c := copy(e.partial[e.partialLen:], p)
		e.partialLen += c
		p = p[c:]
		if e.partialLen < BlockSize {
			return n, nil
		}
		e.hashDataBlock(e.partial[:])
		e.partialLen = 0
	}
	// Whole blocks are hashed straight from p, without a copy.
	for len(p) >= BlockSize {
		e.hashDataBlock(p[:BlockSize])
		p = p[BlockSize:]
	}
	e.partialLen = copy(e.partial[:], p)
	return n, nil
}

func (e *Encoder) hashDataBlock(block []byte) {
	e.level0 = e.hasher.sum(e.level0, block)
	e.dataBlocks++
}

// hasher computes the salted hashes that make up a tree.
type hasher struct {
	h    hash.Hash
	salt []byte
}

func newHasher(salt []byte) *hasher {
	return &hasher{h: sha256.New(), salt: salt}
}

// sum appends the salted hash of block to dst.
func (x *hasher) sum(dst, block []byte) []byte {
	x.h.Reset()
	x.h.Write(x.salt)
	x.h.Write(block)
	return x.h.Sum(dst)
}

// DataSize returns the number of data bytes written so far.
func (e *Encoder) DataSize() int64 {
	return e.dataBlocks*BlockSize + int64(e.partialLen)
}

// Close completes the tree and writes it, preceded by the superblock if
// there is one. It fails if the data written is empty or not a whole number
// of blocks. Once it has succeeded, MappingTable describes the result.
func (e *Encoder) Close() error {
	if e.closed {
		return errClosed
	}
	e.closed = true
	if e.partialLen != 0 {
		size := e.DataSize()
		return fmt.Errorf("verity: data size %d is not a multiple of the %d-byte block size; pad the image with zeros to %d bytes",
			size, BlockSize, (e.dataBlocks+1)*BlockSize)
	}
	if e.dataBlocks == 0 {
		return errors.New("verity: data image is empty")
	}

	levels := e.buildLevels()
	if len(levels) == 0 {
		// A single data block's hash is the root hash itself.
		copy(e.root[:], e.level0)
	} else {
		copy(e.root[:], e.hasher.sum(nil, levels[len(levels)-1]))
	}
	// Callers keep the Encoder for MappingTable; without this it would keep
	// the lowest level alive, the bulk of the tree.
	e.level0 = nil

	if e.superblock {
		if _, err := e.w.Write(e.encodeSuperblock()); err != nil {
			return fmt.Errorf("verity: writing superblock: %w", err)
		}
	}
	for i := len(levels) - 1; i >= 0; i-- {
		if _, err := e.w.Write(levels[i]); err != nil {
			return fmt.Errorf("verity: writing hash tree level %d: %w", i, err)
		}
	}
	e.done = true
	return nil
}

// buildLevels returns the levels of the tree, lowest first, each padded to
// whole blocks.
func (e *Encoder) buildLevels() [][]byte {
	if e.dataBlocks == 1 {
		return nil
	}
	level := padToBlock(e.level0)
	levels := [][]byte{level}
	for len(level) > BlockSize {
		next := make([]byte, 0, (len(level)/BlockSize)*digestSize)
		for off := 0; off < len(level); off += BlockSize {
			next = e.hasher.sum(next, level[off:off+BlockSize])
		}
		level = padToBlock(next)
		levels = append(levels, level)
	}
	return levels
}

func padToBlock(b []byte) []byte {
	if rem := len(b) % BlockSize; rem != 0 {
		b = append(b, make([]byte, BlockSize-rem)...)
	}
	return b
}

// treeLevels returns the number of hash blocks of each level of the tree
// over dataBlocks data blocks, lowest level first. Encoder.buildLevels
// produces exactly these; Verify relies on them to find the levels.
func treeLevels(dataBlocks int64) []int64 {
	var levels []int64
	for n := dataBlocks; n > 1; {
		n = (n + hashesPerBlock - 1) / hashesPerBlock
		levels = append(levels, n)
	}
	return levels
}

// superblock is the on-disk layout of veritysetup's superblock, all
// integers little-endian.
type superblock struct {
	Signature     [8]byte
	Version       uint32
	HashType      uint32
	UUID          [16]byte
	Algorithm     [32]byte
	DataBlockSize uint32
	HashBlockSize uint32
	DataBlocks    uint64
	SaltSize      uint16
	_             [6]byte
	Salt          [MaxSaltSize]byte
	_             [168]byte
}

func (e *Encoder) encodeSuperblock() []byte {
	sb := superblock{
		Version:       1,
		HashType:      1,
		UUID:          e.uuid,
		DataBlockSize: BlockSize,
		HashBlockSize: BlockSize,
		DataBlocks:    uint64(e.dataBlocks),
		SaltSize:      uint16(len(e.salt)),
	}
	copy(sb.Signature[:], "verity")
	copy(sb.Algorithm[:], "sha256")
	copy(sb.Salt[:], e.salt)
	b, err := binary.Append(make([]byte, 0, BlockSize), binary.LittleEndian, &sb)
	if err != nil {
		// Only types without a fixed size make binary.Append fail.
		panic(fmt.Sprintf("encoding verity superblock: %v", err))
	}
	// The tree starts at the next hash block.
	return padToBlock(b)
}

// MappingTable returns the table that maps the encoded image, once Close has
// succeeded. The data image is on dataDevice, and hashDevice holds what the
// Encoder wrote starting at byte hashOffset, a multiple of BlockSize. For
// the usual layout, the tree appended to the data on the same device, pass
// the same device twice and DataSize as the offset.
func (e *Encoder) MappingTable(dataDevice, hashDevice string, hashOffset int64) (*MappingTable, error) {
	if !e.done {
		return nil, errors.New("verity: mapping table asked for before Close succeeded")
	}
	if hashOffset < 0 || hashOffset%BlockSize != 0 {
		return nil, fmt.Errorf("verity: hash offset %d is not a non-negative multiple of %d", hashOffset, BlockSize)
	}
	t := &MappingTable{
		DataDevice:     dataDevice,
		HashDevice:     hashDevice,
		DataBlocks:     e.dataBlocks,
		HashStartBlock: hashOffset / BlockSize,
		RootHash:       e.root,
		Salt:           bytes.Clone(e.salt),
	}
	if e.superblock {
		t.HashStartBlock++
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return t, nil
}

// saltDomain separates DeriveSalt's hashes from any other use of SHA-512
// over the same image.
const saltDomain = "metropolis.dev/osbase/verity salt v1\x00"

// DeriveSalt computes a DefaultSaltSize-byte salt from the data image read
// from r, for builds that must be reproducible: the same image always gets
// the same salt, and so the same tree and root hash, while different images
// still get unrelated salts, which is all a salt is for.
func DeriveSalt(r io.Reader) ([]byte, error) {
	h := sha512.New()
	h.Write([]byte(saltDomain))
	if _, err := io.Copy(h, r); err != nil {
		return nil, fmt.Errorf("verity: reading data to derive a salt: %w", err)
	}
	return h.Sum(nil), nil
}
