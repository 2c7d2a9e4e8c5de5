package secureboot

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"metropolis.dev/build/uki"
)

// pinnedStub is systemd's UEFI stub, a real unsigned UEFI executable with a
// COFF symbol table after its sections.
var pinnedStub = sync.OnceValues(func() ([]byte, error) {
	return uki.PinnedStub(context.Background(), "../..")
})

func testImage(t *testing.T) []byte {
	t.Helper()
	stub, err := pinnedStub()
	if err != nil {
		t.Fatalf("getting the pinned stub: %v", err)
	}
	return bytes.Clone(stub)
}

// sharedKey is a key that tests share, since generating RSA keys is slow,
// and the directory with its files, which tests must not change.
var sharedKey struct {
	once sync.Once
	key  *Key
	dir  string
	err  error
}

// testKey returns the shared key and its directory.
func testKey(t *testing.T) (*Key, string) {
	t.Helper()
	s := &sharedKey
	s.once.Do(func() {
		s.dir, s.err = os.MkdirTemp("", "secureboot-test-")
		if s.err == nil {
			s.key, s.err = newKey(s.dir)
		}
	})
	if s.err != nil {
		t.Fatal(s.err)
	}
	return s.key, s.dir
}

// newTestKey returns a key of its own and its directory.
func newTestKey(t *testing.T) (*Key, string) {
	t.Helper()
	dir := t.TempDir()
	key, err := newKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	return key, dir
}

// newKey writes a new key with the files of a development key into dir.
func newKey(dir string) (*Key, error) {
	if err := writeDevKey(dir); err != nil {
		return nil, err
	}
	return LoadKey(filepath.Join(dir, DevKeyFile), filepath.Join(dir, DevCertFile))
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedKey.dir != "" {
		os.RemoveAll(sharedKey.dir)
	}
	os.Exit(code)
}

// requireTool fails the test if a program it checks the result with is
// missing.
func requireTool(t *testing.T, name, debianPackage string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is missing: install Debian package %s (go run ./build/prereqs %s)", name, debianPackage, debianPackage)
	}
}

func writeFile(t *testing.T, name string, content []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
