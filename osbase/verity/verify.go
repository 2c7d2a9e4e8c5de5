package verity

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
)

// verifyChunkBlocks is how many data blocks Verify reads at once, to keep
// reads large without holding much of the image.
const verifyChunkBlocks = 256

// CorruptionError reports a block that does not match its hash.
type CorruptionError struct {
	// HashBlock tells whether Block is a block of the hash device rather
	// than of the data device.
	HashBlock bool
	// Block is the index of the corrupted block on its device, counted in
	// BlockSize blocks from the start of the device, like the kernel does
	// in its messages.
	Block int64
}

func (e *CorruptionError) Error() string {
	kind := "data"
	if e.HashBlock {
		kind = "hash"
	}
	return fmt.Sprintf("verity: %s block %d is corrupted", kind, e.Block)
}

// Verify checks a data image and its hash tree against t in userspace,
// computing what the kernel checks when every block is read. data reads the
// data device and hashDevice the hash device, which may be the same; the
// device names in t are not used. The size of the image is that of t.
//
// Like the kernel, it trusts only the root hash and works down from it:
// first each level of the tree, from the top, against the level above, then
// the data blocks in order. It returns a *CorruptionError for the first
// block in that order that does not match, so a corrupted data block is
// reported by its index as long as the tree above it is intact. With
// IgnoreZeroBlocks set, data blocks expected to be zero are not checked,
// since the kernel returns zeros for them without reading them.
func Verify(data, hashDevice io.ReaderAt, t *MappingTable) error {
	if err := t.Validate(); err != nil {
		return err
	}
	x := newHasher(t.Salt)
	var sum []byte
	buf := make([]byte, verifyChunkBlocks*BlockSize)

	// want holds the trusted hashes of the blocks one level down, starting
	// at the top with the root hash alone.
	want := t.RootHash[:]
	levels := treeLevels(t.DataBlocks)
	pos := t.HashStartBlock
	for i := len(levels) - 1; i >= 0; i-- {
		// Grown as blocks check out rather than allocated up front, so that
		// a table claiming a huge image fails on reading a short device
		// instead of on allocating its tree.
		var level []byte
		what := fmt.Sprintf("hash tree level %d", i)
		err := eachBlock(hashDevice, what, pos, levels[i], buf, func(k int64, block []byte) error {
			sum = x.sum(sum[:0], block)
			if !bytes.Equal(sum, want[k*digestSize:(k+1)*digestSize]) {
				return &CorruptionError{HashBlock: true, Block: pos + k}
			}
			level = append(level, block...)
			return nil
		})
		if err != nil {
			return err
		}
		want = level
		pos += levels[i]
	}

	ignoreZero := slices.Contains(t.OptionalParameters, IgnoreZeroBlocks)
	zeroSum := x.sum(nil, make([]byte, BlockSize))
	return eachBlock(data, "data", 0, t.DataBlocks, buf, func(k int64, block []byte) error {
		w := want[k*digestSize : (k+1)*digestSize]
		if ignoreZero && bytes.Equal(w, zeroSum) {
			return nil
		}
		sum = x.sum(sum[:0], block)
		if !bytes.Equal(sum, w) {
			return &CorruptionError{Block: k}
		}
		return nil
	})
}

// eachBlock reads count blocks from r, starting at block first, through buf
// (a whole number of blocks) and calls fn with each block's index counted
// from first. The block is only valid during the call. It stops at the first
// error, returning fn's errors as they are and describing read errors with
// what was read.
func eachBlock(r io.ReaderAt, what string, first, count int64, buf []byte, fn func(k int64, block []byte) error) error {
	for done := int64(0); done < count; {
		chunk := buf[:min(int64(len(buf)), (count-done)*BlockSize)]
		n, err := r.ReadAt(chunk, (first+done)*BlockSize)
		// ReadAt may report io.EOF along with a read that ends exactly at
		// the end of the input.
		if n < len(chunk) {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("verity: reading %s, blocks %d to %d: %w", what, first+done, first+done+int64(len(chunk)/BlockSize)-1, err)
		}
		for off := 0; off < len(chunk); off += BlockSize {
			if err := fn(done, chunk[off:off+BlockSize]); err != nil {
				return err
			}
			done++
		}
	}
	return nil
}
