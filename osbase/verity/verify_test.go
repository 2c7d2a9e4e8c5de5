package verity

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestVerifyAcceptsEncoderOutput(t *testing.T) {
	for _, blocks := range []int{1, 2, 128, 129, 300, 128*128 + 1} {
		data := randomData(uint64(blocks), blocks*BlockSize)
		tree, table := encode(t, data, Options{})
		if err := Verify(bytes.NewReader(data), bytes.NewReader(tree), table); err != nil {
			t.Errorf("%d blocks: Verify: %v", blocks, err)
		}
	}
}

// TestVerifyAppended checks the node's layout: data and tree in one file,
// with a superblock in between for good measure.
func TestVerifyAppended(t *testing.T) {
	data := randomData(7, 200*BlockSize)
	var image bytes.Buffer
	image.Write(data)
	e, err := NewEncoder(&image, Options{Superblock: true})
	if err != nil {
		t.Fatal(err)
	}
	e.Write(data)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	table, err := e.MappingTable("/dev/vda3", "/dev/vda3", e.DataSize())
	if err != nil {
		t.Fatal(err)
	}
	r := bytes.NewReader(image.Bytes())
	if err := Verify(r, r, table); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

// TestFlippedDataByte is the property that matters: flipping any bit of the
// data changes the root hash, and Verify names the block it is in.
func TestFlippedDataByte(t *testing.T) {
	const blocks = 130
	data := randomData(8, blocks*BlockSize)
	salt := []byte("salt")
	tree, table := encode(t, data, Options{Salt: salt})

	r := rand.New(rand.NewPCG(3, 4))
	positions := []int{0, BlockSize - 1, BlockSize, 128 * BlockSize, len(data) - 1}
	for range 200 {
		positions = append(positions, r.IntN(len(data)))
	}
	for _, pos := range positions {
		corrupt := bytes.Clone(data)
		corrupt[pos] ^= 1 << r.IntN(8)

		_, changed := encode(t, corrupt, Options{Salt: salt})
		if changed.RootHash == table.RootHash {
			t.Errorf("flipping a bit of byte %d leaves the root hash unchanged", pos)
		}
		err := Verify(bytes.NewReader(corrupt), bytes.NewReader(tree), table)
		var ce *CorruptionError
		if !errors.As(err, &ce) || *ce != (CorruptionError{Block: int64(pos / BlockSize)}) {
			t.Errorf("byte %d flipped: Verify = %v, want data block %d corrupted", pos, err, pos/BlockSize)
		}
	}
}

// TestFlippedHashByte corrupts each block of a three-level tree, and the
// padding of its blocks, which the hashes above cover as well.
func TestFlippedHashByte(t *testing.T) {
	// 128*128+1 data blocks make levels of 129, 2 and 1 hash blocks,
	// stored top down from hash start block 5.
	const hashStart = 5
	data := randomData(9, (128*128+1)*BlockSize)
	var tree bytes.Buffer
	e, err := NewEncoder(&tree, Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.Write(data)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	table, err := e.MappingTable("/dev/data", "/dev/hash", hashStart*BlockSize)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tree.Len(), (1+2+129)*BlockSize; got != want {
		t.Fatalf("tree has %d bytes, want %d", got, want)
	}
	hashDevice := append(make([]byte, hashStart*BlockSize), tree.Bytes()...)

	for _, tc := range []struct {
		name  string
		block int // within the tree
		off   int // within the block
	}{
		{"top block", 0, 17},
		{"top block padding", 0, 2*digestSize + 1},
		{"middle level", 1, 0},
		{"middle level padding", 2, BlockSize - 1},
		{"lowest level first block", 3, 100},
		{"lowest level last block", 131, 5},
		{"lowest level last block padding", 131, digestSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			corrupt := bytes.Clone(hashDevice)
			corrupt[(hashStart+tc.block)*BlockSize+tc.off] ^= 0x80
			err := Verify(bytes.NewReader(data), bytes.NewReader(corrupt), table)
			var ce *CorruptionError
			want := CorruptionError{HashBlock: true, Block: int64(hashStart + tc.block)}
			if !errors.As(err, &ce) || *ce != want {
				t.Errorf("Verify = %v, want %v", err, &want)
			}
		})
	}
}

func TestVerifyWrongTable(t *testing.T) {
	for _, blocks := range []int{1, 3} {
		data := randomData(10, blocks*BlockSize)
		tree, table := encode(t, data, Options{})
		// A single block is checked against the root hash directly, a
		// larger image's top hash block is.
		want := CorruptionError{HashBlock: blocks > 1}

		for name, modify := range map[string]func(*MappingTable){
			"root hash": func(m *MappingTable) { m.RootHash[31] ^= 1 },
			"salt":      func(m *MappingTable) { m.Salt[0] ^= 1 },
			"no salt":   func(m *MappingTable) { m.Salt = nil },
		} {
			wrong := *table
			wrong.Salt = bytes.Clone(table.Salt)
			modify(&wrong)
			err := Verify(bytes.NewReader(data), bytes.NewReader(tree), &wrong)
			var ce *CorruptionError
			if !errors.As(err, &ce) || *ce != want {
				t.Errorf("%d blocks, wrong %s: Verify = %v, want %v", blocks, name, err, &want)
			}
		}
	}
}

func TestVerifyShortDevices(t *testing.T) {
	data := randomData(11, 300*BlockSize)
	tree, table := encode(t, data, Options{})
	for _, tc := range []struct {
		name       string
		data, hash []byte
		wantErr    string
	}{
		{"data", data[:len(data)-1], tree, "verity: reading data, blocks 256 to 299: unexpected EOF"},
		{"hash tree", data, tree[:len(tree)-BlockSize], "verity: reading hash tree level 0, blocks 1 to 3: unexpected EOF"},
		{"empty hash device", data, nil, "verity: reading hash tree level 1, blocks 0 to 0: unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(bytes.NewReader(tc.data), bytes.NewReader(tc.hash), table)
			if !errors.Is(err, io.ErrUnexpectedEOF) || err.Error() != tc.wantErr {
				t.Errorf("Verify = %v, want %q", err, tc.wantErr)
			}
		})
	}

	// A table claiming an enormous image fails on reading the device, not
	// on allocating the levels of its tree. Its top hash block is made to
	// match, so that Verify goes on to the level below.
	x := newHasher(nil)
	zeroSum := x.sum(nil, make([]byte, BlockSize))
	top := padToBlock(bytes.Repeat(zeroSum, hashesPerBlock/8))
	huge := &MappingTable{DataDevice: "/dev/data", HashDevice: "/dev/hash", DataBlocks: maxBlocks}
	copy(huge.RootHash[:], x.sum(nil, top))
	hashDevice := append(top, make([]byte, BlockSize)...)
	err := Verify(bytes.NewReader(data), bytes.NewReader(hashDevice), huge)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Verify of an image of %d blocks = %v, want %v", huge.DataBlocks, err, io.ErrUnexpectedEOF)
	}
}

func TestVerifyIgnoreZeroBlocks(t *testing.T) {
	data := randomData(12, 4*BlockSize)
	clear(data[2*BlockSize : 3*BlockSize])
	tree, table := encode(t, data, Options{})
	corrupt := bytes.Clone(data)
	corrupt[2*BlockSize+10] = 1

	err := Verify(bytes.NewReader(corrupt), bytes.NewReader(tree), table)
	var ce *CorruptionError
	if !errors.As(err, &ce) || *ce != (CorruptionError{Block: 2}) {
		t.Errorf("Verify = %v, want data block 2 corrupted", err)
	}

	// The kernel does not read blocks that are meant to be zero.
	table.OptionalParameters = []string{IgnoreZeroBlocks}
	if err := Verify(bytes.NewReader(corrupt), bytes.NewReader(tree), table); err != nil {
		t.Errorf("Verify with %s = %v, want nil", IgnoreZeroBlocks, err)
	}
	// Other blocks still count.
	corrupt[BlockSize] ^= 1
	if err := Verify(bytes.NewReader(corrupt), bytes.NewReader(tree), table); !errors.As(err, &ce) || *ce != (CorruptionError{Block: 1}) {
		t.Errorf("Verify with %s = %v, want data block 1 corrupted", IgnoreZeroBlocks, err)
	}
}

func TestVerifyInvalidTable(t *testing.T) {
	table := testTable()
	table.DataBlocks = 0
	err := Verify(bytes.NewReader(nil), bytes.NewReader(nil), table)
	if err == nil || !strings.Contains(err.Error(), "0 data blocks") {
		t.Errorf("Verify = %v, want the table rejected", err)
	}
}

func TestCorruptionErrorMessage(t *testing.T) {
	if got, want := (&CorruptionError{Block: 5}).Error(), "verity: data block 5 is corrupted"; got != want {
		t.Errorf("Error = %q, want %q", got, want)
	}
	if got, want := (&CorruptionError{HashBlock: true, Block: 7}).Error(), "verity: hash block 7 is corrupted"; got != want {
		t.Errorf("Error = %q, want %q", got, want)
	}
}
