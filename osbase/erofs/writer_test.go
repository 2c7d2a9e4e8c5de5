package erofs

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"metropolis.dev/osbase/structfs"
	"metropolis.dev/osbase/structfs/structfstest"
)

const modTime = 1700000000

// writeImage writes tree to a new file and returns its path.
func writeImage(tb testing.TB, tree *structfs.Tree, opts Options) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "image.erofs")
	f, err := os.Create(p)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := Write(f, tree, opts); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return p
}

func TestReproducible(t *testing.T) {
	// Two trees built alike, with Place calls in a different order and
	// host files in different directories.
	var images [2][]byte
	for i := range images {
		b, err := os.ReadFile(writeImage(t, structfstest.Sample(t), Options{ModTime: modTime}))
		if err != nil {
			t.Fatal(err)
		}
		images[i] = b
	}
	if !bytes.Equal(images[0], images[1]) {
		t.Error("two images of the same tree differ")
	}
	// dm-verity hashes whole 4 KiB blocks.
	if len(images[0])%4096 != 0 {
		t.Errorf("image size %d is not a multiple of 4096", len(images[0]))
	}
	t.Logf("sample image: %d bytes", len(images[0]))
}

func TestEncodeDev(t *testing.T) {
	for _, tc := range []struct{ major, minor, want uint32 }{
		{1, 3, 0x103},
		{8, 0, 0x800},
		{5, 0x1234, 0x01200534},
		{structfs.MaxMajor, structfs.MaxMinor, 0xffffffff},
	} {
		if got := encodeDev(tc.major, tc.minor); got != tc.want {
			t.Errorf("encodeDev(%d, %d) = %#x, want %#x", tc.major, tc.minor, got, tc.want)
		}
	}
}

// lyingBlob claims a size that its content does not have.
type lyingBlob struct {
	size    int64
	content string
}

func (b lyingBlob) Size() int64 { return b.size }
func (b lyingBlob) Open() (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(b.content)), nil
}

func TestWriteErrors(t *testing.T) {
	var tree structfs.Tree
	if err := tree.Place("/etc/file", structfs.File(0o644, lyingBlob{10, "12345"})); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "image"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = Write(f, &tree, Options{})
	if want := "erofs: adding /etc/file: content ended after 5 of 10 bytes"; err == nil || err.Error() != want {
		t.Errorf("Write = %v, want %q", err, want)
	}
}
