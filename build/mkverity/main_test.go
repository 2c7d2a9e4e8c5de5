package main

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"metropolis.dev/osbase/verity"
)

// veritysetupPath is where Debian's cryptsetup-bin installs veritysetup.
const veritysetupPath = "/sbin/veritysetup"

func writeData(t *testing.T, size int) (string, []byte) {
	t.Helper()
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{byte(size)}).Read(data)
	path := filepath.Join(t.TempDir(), "data.img")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, data
}

// runOK runs the command, which must succeed, and returns its output file
// and the table it printed.
func runOK(t *testing.T, args ...string) ([]byte, *verity.MappingTable) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.img")
	var stdout, stderr bytes.Buffer
	if err := run(append([]string{"-out", out}, args...), &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	line, ok := strings.CutSuffix(stdout.String(), "\n")
	if !ok || strings.Contains(line, "\n") {
		t.Fatalf("output is not a single line: %q", stdout.String())
	}
	table, err := verity.ParseMappingTable(line)
	if err != nil {
		t.Fatalf("parsing the printed table: %v", err)
	}
	image, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return image, table
}

func TestRun(t *testing.T) {
	const blocks = 300
	dataPath, data := writeData(t, blocks*verity.BlockSize)
	salt := "00112233445566778899aabbccddeeff"
	image, table := runOK(t, "-data", dataPath, "-salt", salt)

	if table.DataDevice != defaultDevice || table.HashDevice != defaultDevice {
		t.Errorf("devices %s and %s, want %s for both", table.DataDevice, table.HashDevice, defaultDevice)
	}
	if table.DataBlocks != blocks || table.HashStartBlock != blocks {
		t.Errorf("%d data blocks, hash start block %d, want %d for both", table.DataBlocks, table.HashStartBlock, blocks)
	}
	if hex.EncodeToString(table.Salt) != salt {
		t.Errorf("salt %x, want %s", table.Salt, salt)
	}
	// Levels of 3 and 1 hash blocks follow the data.
	if len(image) != (blocks+4)*verity.BlockSize || !bytes.Equal(image[:len(data)], data) {
		t.Errorf("output of %d bytes does not hold the data followed by a 4-block tree", len(image))
	}

	// veritysetup agrees, reading data and tree from the same file.
	if _, err := os.Stat(veritysetupPath); err != nil {
		t.Fatalf("%s is missing (%v): install Debian's cryptsetup-bin package, e.g. with `make prereqs-test`", veritysetupPath, err)
	}
	outPath := filepath.Join(t.TempDir(), "image")
	if err := os.WriteFile(outPath, image, 0o644); err != nil {
		t.Fatal(err)
	}
	verify := func(root []byte) error {
		out, err := exec.Command(veritysetupPath, "verify", "--no-superblock",
			"--hash=sha256", "--data-block-size=4096", "--hash-block-size=4096",
			fmt.Sprintf("--data-blocks=%d", table.DataBlocks),
			fmt.Sprintf("--hash-offset=%d", table.HashStartBlock*verity.BlockSize),
			"--salt="+salt, outPath, outPath, hex.EncodeToString(root)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	}
	if err := verify(table.RootHash[:]); err != nil {
		t.Errorf("veritysetup rejects the output: %v", err)
	}
	wrong := table.RootHash
	wrong[0] ^= 1
	if err := verify(wrong[:]); err == nil {
		t.Error("veritysetup accepts the output with a wrong root hash")
	}
}

func TestRunDevice(t *testing.T) {
	dataPath, _ := writeData(t, verity.BlockSize)
	_, table := runOK(t, "-data", dataPath, "-device", "/dev/vda3")
	if table.DataDevice != "/dev/vda3" || table.HashDevice != "/dev/vda3" {
		t.Errorf("devices %s and %s, want /dev/vda3 for both", table.DataDevice, table.HashDevice)
	}
}

func TestRunSalt(t *testing.T) {
	dataPath, data := writeData(t, 10*verity.BlockSize)

	t.Run("random", func(t *testing.T) {
		image1, table1 := runOK(t, "-data", dataPath)
		image2, table2 := runOK(t, "-data", dataPath)
		if len(table1.Salt) != verity.DefaultSaltSize {
			t.Errorf("salt has %d bytes, want %d", len(table1.Salt), verity.DefaultSaltSize)
		}
		if bytes.Equal(table1.Salt, table2.Salt) || bytes.Equal(image1, image2) {
			t.Error("two runs without a salt use the same salt")
		}
	})
	t.Run("derived", func(t *testing.T) {
		image1, table1 := runOK(t, "-data", dataPath, "-derive-salt")
		image2, table2 := runOK(t, "-data", dataPath, "-derive-salt")
		want, err := verity.DeriveSalt(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(table1.Salt, want) {
			t.Errorf("salt %x, want %x from DeriveSalt", table1.Salt, want)
		}
		if table1.String() != table2.String() || !bytes.Equal(image1, image2) {
			t.Error("two runs with -derive-salt differ")
		}
		// The image after the rewind is still the whole data image.
		if !bytes.Equal(image1[:len(data)], data) {
			t.Error("output does not start with the data image")
		}
	})
	t.Run("given", func(t *testing.T) {
		image1, table1 := runOK(t, "-data", dataPath, "-salt", "ab")
		image2, table2 := runOK(t, "-data", dataPath, "-salt", "ab")
		if table1.String() != table2.String() || !bytes.Equal(image1, image2) {
			t.Error("two runs with the same -salt differ")
		}
	})
}

func TestRunErrors(t *testing.T) {
	good, _ := writeData(t, 2*verity.BlockSize)
	unaligned, _ := writeData(t, verity.BlockSize+1)
	empty, _ := writeData(t, 0)
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no data", []string{}, "both -data and -out are required"},
		{"extra argument", []string{"-data", good, "x"}, `unexpected arguments ["x"]`},
		{"unknown flag", []string{"-data", good, "-superblock"}, "flag provided but not defined: -superblock"},
		{"missing data", []string{"-data", filepath.Join(t.TempDir(), "nope")}, "no such file or directory"},
		{"unaligned data", []string{"-data", unaligned}, "has 4097 bytes, not a positive multiple of 4096: pad it with zeros"},
		{"empty data", []string{"-data", empty}, "has 0 bytes"},
		{"bad salt", []string{"-data", good, "-salt", "xyz"}, "-salt: encoding/hex"},
		{"long salt", []string{"-data", good, "-salt", strings.Repeat("00", verity.MaxSaltSize+1)}, "salt of 257 bytes is longer than the maximum of 256"},
		{"two salts", []string{"-data", good, "-salt", "00", "-derive-salt"}, "-salt and -derive-salt exclude each other"},
		{"bad device", []string{"-data", good, "-device", "a,b"}, `data device: name "a,b" contains ','`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.img")
			var stdout, stderr bytes.Buffer
			err := run(append([]string{"-out", out}, tc.args...), &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("run = %v, want an error containing %q", err, tc.wantErr)
			}
			if stdout.Len() != 0 {
				t.Errorf("printed %q despite failing", stdout.String())
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("failed run leaves its output behind (stat: %v)", err)
			}
		})
	}

	t.Run("help", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if err := run([]string{"-h"}, &stdout, &stderr); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("run -h = %v, want %v", err, flag.ErrHelp)
		}
		if !strings.Contains(stderr.String(), "-derive-salt") {
			t.Errorf("usage does not describe the flags:\n%s", stderr.String())
		}
	})
}
