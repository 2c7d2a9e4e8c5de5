package verity

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// veritysetupPath is where Debian's cryptsetup-bin installs veritysetup, the
// reference implementation these tests compare against.
const veritysetupPath = "/sbin/veritysetup"

// veritysetup runs veritysetup and returns its combined output and error. It
// fails the test if veritysetup is not installed: the comparison with it is
// the point of these tests, so silently skipping it would hide that nothing
// was compared.
func veritysetup(t *testing.T, args ...string) (string, error) {
	t.Helper()
	if _, err := os.Stat(veritysetupPath); err != nil {
		t.Fatalf("%s is missing (%v): install Debian's cryptsetup-bin package, e.g. with `make prereqs-test`", veritysetupPath, err)
	}
	out, err := exec.Command(veritysetupPath, args...).CombinedOutput()
	return string(out), err
}

var rootHashLine = regexp.MustCompile(`(?m)^Root hash:\s+([0-9a-f]+)$`)

// veritysetupFormat runs `veritysetup format` on the data file and returns
// the root hash it prints and the hash file it writes.
func veritysetupFormat(t *testing.T, dataPath string, args ...string) (root string, tree []byte) {
	t.Helper()
	hashPath := filepath.Join(t.TempDir(), "hash")
	args = append([]string{"format", "--hash=sha256", "--data-block-size=4096", "--hash-block-size=4096"}, args...)
	out, err := veritysetup(t, append(args, dataPath, hashPath)...)
	if err != nil {
		t.Fatalf("veritysetup %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	m := rootHashLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no root hash in veritysetup's output:\n%s", out)
	}
	tree, err = os.ReadFile(hashPath)
	if err != nil {
		t.Fatal(err)
	}
	return m[1], tree
}

// randomData returns size bytes of reproducible pseudo-random data. Large
// sizes repeat a random megabyte, each block stamped with its index, so that
// all blocks still differ, which is all a hash tree can tell apart: the
// tests use tens of megabytes, and generating them all takes seconds under
// the race detector.
func randomData(seed uint64, size int) []byte {
	b := make([]byte, size)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
	const pattern = 1 << 20
	r.Read(b[:min(size, pattern)])
	for off := pattern; off < size; off += pattern {
		copy(b[off:], b[:pattern])
	}
	for off := 0; off+8 <= size; off += BlockSize {
		binary.LittleEndian.PutUint64(b[off:], uint64(off/BlockSize))
	}
	return b
}

// encode runs data through an Encoder and returns what it wrote and the
// table for a separate hash device that holds it from its start.
func encode(t testing.TB, data []byte, opts Options) ([]byte, *MappingTable) {
	t.Helper()
	var tree bytes.Buffer
	e, err := NewEncoder(&tree, opts)
	if err != nil {
		t.Fatalf("NewEncoder: %v", err)
	}
	if _, err := e.Write(data); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	table, err := e.MappingTable("/dev/data", "/dev/hash", 0)
	if err != nil {
		t.Fatalf("MappingTable: %v", err)
	}
	return tree.Bytes(), table
}

func writeFile(t *testing.T, name string, content []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
