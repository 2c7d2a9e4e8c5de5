package verity

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
)

// TestMatchesVeritysetup compares root hashes and hash devices, byte for
// byte, with veritysetup's for sizes around the boundaries of the tree's
// shape, and has veritysetup accept our trees and reject a flipped byte.
func TestMatchesVeritysetup(t *testing.T) {
	salt64 := randomData(1, DefaultSaltSize)
	uuid := [16]byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10}
	const uuidString = "01234567-89ab-cdef-fedc-ba9876543210"
	for _, tc := range []struct {
		name   string
		blocks int
		salt   []byte
	}{
		{"1 block, no tree", 1, salt64},
		{"2 blocks", 2, salt64},
		{"127 blocks", 127, salt64},
		{"128 blocks fill one hash block", 128, salt64},
		{"129 blocks need two levels", 129, salt64},
		{"128*128 blocks fill two levels", 128 * 128, salt64},
		{"128*128+1 blocks need three levels", 128*128 + 1, salt64},
		{"5 MiB", 5 * 256, salt64},
		{"short salt", 300, []byte{0xab, 0xcd}},
		{"no salt", 300, []byte{}},
		{"longest salt", 300, randomData(2, MaxSaltSize)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := randomData(uint64(tc.blocks), tc.blocks*BlockSize)
			dataPath := writeFile(t, "data", data)
			saltArg := "--salt=-"
			if len(tc.salt) > 0 {
				saltArg = "--salt=" + hex.EncodeToString(tc.salt)
			}

			t.Run("no superblock", func(t *testing.T) {
				tree, table := encode(t, data, Options{Salt: tc.salt})
				wantRoot, wantTree := veritysetupFormat(t, dataPath, "--no-superblock", saltArg)
				compareTrees(t, table, tree, wantRoot, wantTree)

				params := []string{"--no-superblock", "--hash=sha256", "--data-block-size=4096", "--hash-block-size=4096", saltArg}
				checkVeritysetupVerify(t, data, dataPath, tree, table, params...)
			})
			t.Run("superblock", func(t *testing.T) {
				tree, table := encode(t, data, Options{Salt: tc.salt, Superblock: true, SuperblockUUID: uuid})
				if table.HashStartBlock != 1 {
					t.Errorf("hash start block = %d, want 1, after the superblock", table.HashStartBlock)
				}
				wantRoot, wantTree := veritysetupFormat(t, dataPath, saltArg, "--uuid="+uuidString)
				compareTrees(t, table, tree, wantRoot, wantTree)

				// veritysetup takes every parameter from our superblock.
				checkVeritysetupVerify(t, data, dataPath, tree, table)
			})
		})
	}
}

func compareTrees(t *testing.T, table *MappingTable, tree []byte, wantRoot string, wantTree []byte) {
	t.Helper()
	if got := hex.EncodeToString(table.RootHash[:]); got != wantRoot {
		t.Errorf("root hash = %s, veritysetup's is %s", got, wantRoot)
	}
	if !bytes.Equal(tree, wantTree) {
		t.Errorf("hash device differs from veritysetup's: %d bytes, want %d, first difference at byte %d",
			len(tree), len(wantTree), firstDifference(tree, wantTree))
	}
}

func firstDifference(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// checkVeritysetupVerify has veritysetup verify, in userspace, the data
// against our tree (the hash device's content), then the data with a byte
// flipped, which it and Verify must both reject.
func checkVeritysetupVerify(t *testing.T, data []byte, dataPath string, tree []byte, table *MappingTable, params ...string) {
	t.Helper()
	hashPath := writeFile(t, "hash", tree)
	root := hex.EncodeToString(table.RootHash[:])
	args := append(append([]string{"verify"}, params...), dataPath, hashPath, root)
	if out, err := veritysetup(t, args...); err != nil {
		t.Errorf("veritysetup rejects our tree: %v\n%s", err, out)
	}

	// Flipped in place and back, as copies of the larger images are slow
	// to make under the race detector.
	pos := int64(len(data) - 1 - len(data)/3)
	flipByte(t, dataPath, pos)
	defer flipByte(t, dataPath, pos)
	args = append(append([]string{"verify"}, params...), dataPath, hashPath, root)
	if out, err := veritysetup(t, args...); err == nil {
		t.Errorf("veritysetup accepts data with byte %d flipped:\n%s", pos, out)
	} else if !strings.Contains(out, "Verification") || !strings.Contains(out, "failed") {
		// A single block has no tree, so veritysetup reports it as a
		// failure of the root hash, otherwise of the data area.
		t.Errorf("veritysetup fails on flipped data for another reason than verification: %v\n%s", err, out)
	}

	err := Verify(flippedReader{bytes.NewReader(data), pos}, bytes.NewReader(tree), table)
	var ce *CorruptionError
	if !errors.As(err, &ce) || *ce != (CorruptionError{Block: pos / BlockSize}) {
		t.Errorf("Verify of data with byte %d flipped = %v, want data block %d corrupted", pos, err, pos/BlockSize)
	}
}

func flipByte(t *testing.T, path string, pos int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, pos); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, pos); err != nil {
		t.Fatal(err)
	}
}

// flippedReader reads like its ReaderAt with the byte at pos flipped as
// flipByte flips it.
type flippedReader struct {
	io.ReaderAt
	pos int64
}

func (r flippedReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.ReaderAt.ReadAt(p, off)
	if i := r.pos - off; i >= 0 && i < int64(n) {
		p[i] ^= 0x40
	}
	return n, err
}

// TestWriteSplits checks that the tree does not depend on how the data is
// cut into writes.
func TestWriteSplits(t *testing.T) {
	data := randomData(3, 130*BlockSize)
	opts := Options{Salt: []byte("salt")}
	want, _ := encode(t, data, opts)
	for _, chunk := range []int{1, 7, 512, BlockSize - 1, BlockSize, BlockSize + 1, 3*BlockSize + 5, 1 << 20} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			var got bytes.Buffer
			e, err := NewEncoder(&got, opts)
			if err != nil {
				t.Fatal(err)
			}
			for p := data; len(p) > 0; {
				n := min(chunk, len(p))
				if w, err := e.Write(p[:n]); w != n || err != nil {
					t.Fatalf("Write = %d, %v, want %d, nil", w, err, n)
				}
				p = p[n:]
			}
			if e.DataSize() != int64(len(data)) {
				t.Errorf("DataSize = %d, want %d", e.DataSize(), len(data))
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Error("tree differs from the one of a single write")
			}
		})
	}
}

func TestEncoderErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		size    int
		wantErr string
	}{
		{"empty", 0, "data image is empty"},
		{"partial block", 3*BlockSize + 1, "data size 12289 is not a multiple of the 4096-byte block size; pad the image with zeros to 16384 bytes"},
		{"less than a block", 100, "data size 100 is not a multiple"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := NewEncoder(io.Discard, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.Write(make([]byte, tc.size)); err != nil {
				t.Fatal(err)
			}
			if err := e.Close(); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Close = %v, want an error containing %q", err, tc.wantErr)
			}
			if _, err := e.MappingTable("a", "b", 0); err == nil {
				t.Error("MappingTable after a failed Close succeeds")
			}
		})
	}

	t.Run("salt too long", func(t *testing.T) {
		if _, err := NewEncoder(io.Discard, Options{Salt: make([]byte, MaxSaltSize+1)}); err == nil {
			t.Error("NewEncoder accepts a salt longer than MaxSaltSize")
		}
	})

	t.Run("use after close", func(t *testing.T) {
		e, err := NewEncoder(io.Discard, Options{})
		if err != nil {
			t.Fatal(err)
		}
		e.Write(make([]byte, BlockSize))
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Write([]byte{0}); !errors.Is(err, errClosed) {
			t.Errorf("Write after Close = %v, want %v", err, errClosed)
		}
		if err := e.Close(); !errors.Is(err, errClosed) {
			t.Errorf("second Close = %v, want %v", err, errClosed)
		}
	})

	t.Run("failing writer", func(t *testing.T) {
		e, err := NewEncoder(failingWriter{}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		e.Write(make([]byte, 2*BlockSize))
		if err := e.Close(); !errors.Is(err, errWrite) {
			t.Errorf("Close = %v, want it to wrap %v", err, errWrite)
		}
	})
}

var errWrite = errors.New("disk full")

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errWrite }

func TestMappingTableFromEncoder(t *testing.T) {
	data := randomData(4, 10*BlockSize)
	for _, tc := range []struct {
		name            string
		superblock      bool
		data, hash      string
		offset          int64
		wantStart       int64
		wantErrContains string
	}{
		{name: "appended", data: "PARTLABEL=X", hash: "PARTLABEL=X", offset: 10 * BlockSize, wantStart: 10},
		{name: "appended with superblock", superblock: true, data: "/dev/a", hash: "/dev/a", offset: 10 * BlockSize, wantStart: 11},
		{name: "separate device", data: "/dev/a", hash: "/dev/b", wantStart: 0},
		{name: "separate device with superblock", superblock: true, data: "/dev/a", hash: "/dev/b", wantStart: 1},
		{name: "unaligned offset", data: "/dev/a", hash: "/dev/b", offset: 100, wantErrContains: "not a non-negative multiple"},
		{name: "negative offset", data: "/dev/a", hash: "/dev/b", offset: -BlockSize, wantErrContains: "not a non-negative multiple"},
		{name: "overlap", data: "/dev/a", hash: "/dev/a", offset: 9 * BlockSize, wantErrContains: "overlaps"},
		{name: "bad device", data: "/dev/a b", hash: "/dev/b", wantErrContains: "data device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			salt := []byte{1, 2, 3}
			e, err := NewEncoder(io.Discard, Options{Salt: salt, Superblock: tc.superblock})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.MappingTable(tc.data, tc.hash, tc.offset); err == nil {
				t.Error("MappingTable before Close succeeds")
			}
			e.Write(data)
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			table, err := e.MappingTable(tc.data, tc.hash, tc.offset)
			if tc.wantErrContains != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrContains) {
					t.Fatalf("MappingTable = %v, want an error containing %q", err, tc.wantErrContains)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if table.HashStartBlock != tc.wantStart || table.DataBlocks != 10 || !bytes.Equal(table.Salt, salt) ||
				table.DataDevice != tc.data || table.HashDevice != tc.hash {
				t.Errorf("table = %+v, want %d data blocks, hash start %d, salt %x, devices %s and %s",
					table, 10, tc.wantStart, salt, tc.data, tc.hash)
			}
		})
	}
}

func TestSalt(t *testing.T) {
	data := make([]byte, BlockSize)
	_, a := encode(t, data, Options{})
	_, b := encode(t, data, Options{})
	if len(a.Salt) != DefaultSaltSize {
		t.Errorf("default salt has %d bytes, want %d", len(a.Salt), DefaultSaltSize)
	}
	if bytes.Equal(a.Salt, b.Salt) || a.RootHash == b.RootHash {
		t.Error("two encoders without a salt use the same salt")
	}

	// The encoder keeps its own copy of a given salt.
	salt := []byte("salt")
	var tree bytes.Buffer
	e, err := NewEncoder(&tree, Options{Salt: salt})
	if err != nil {
		t.Fatal(err)
	}
	salt[0] = 'X'
	e.Write(data)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	table, err := e.MappingTable("a", "b", 0)
	if err != nil {
		t.Fatal(err)
	}
	if string(table.Salt) != "salt" {
		t.Errorf("salt = %q after the caller changed its slice, want %q", table.Salt, "salt")
	}
}

func TestDeriveSalt(t *testing.T) {
	a1, err := DeriveSalt(bytes.NewReader([]byte("image a")))
	if err != nil {
		t.Fatal(err)
	}
	a2, err := DeriveSalt(bytes.NewReader([]byte("image a")))
	if err != nil {
		t.Fatal(err)
	}
	b, err := DeriveSalt(bytes.NewReader([]byte("image b")))
	if err != nil {
		t.Fatal(err)
	}
	if len(a1) != DefaultSaltSize {
		t.Errorf("derived salt has %d bytes, want %d", len(a1), DefaultSaltSize)
	}
	if !bytes.Equal(a1, a2) {
		t.Error("the same image gets different salts")
	}
	if bytes.Equal(a1, b) {
		t.Error("different images get the same salt")
	}
	if _, err := DeriveSalt(io.MultiReader(bytes.NewReader([]byte("x")), errReader{})); !errors.Is(err, errRead) {
		t.Errorf("DeriveSalt of a failing reader = %v, want it to wrap %v", err, errRead)
	}
}

var errRead = errors.New("read error")

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errRead }

func BenchmarkEncode(b *testing.B) {
	const size = 64 << 20
	data := randomData(5, size)
	salt := randomData(6, DefaultSaltSize)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		e, err := NewEncoder(io.Discard, Options{Salt: salt})
		if err != nil {
			b.Fatal(err)
		}
		// Written in the pieces io.Copy would use from a file.
		for p := data; len(p) > 0; p = p[32<<10:] {
			e.Write(p[:32<<10])
		}
		if err := e.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
