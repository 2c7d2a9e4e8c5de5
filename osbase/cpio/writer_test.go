package cpio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"

	"metropolis.dev/osbase/structfs"
	"metropolis.dev/osbase/structfs/structfstest"
)

// hdr spells out one newc header with its name, field by field as the
// format defines them, so the test states the expected archive directly.
func hdr(name string, ino, mode, uid, gid, nlink, mtime, size, rdevMajor, rdevMinor uint32) string {
	return fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%s\x00",
		ino, mode, uid, gid, nlink, mtime, size, 0, 0, rdevMajor, rdevMinor, len(name)+1, 0, name)
}

func TestGolden(t *testing.T) {
	var tree structfs.Tree
	file := structfs.File(0o644, structfs.Bytes([]byte("hello")))
	file.UID, file.GID = 1000, 1001
	for p, n := range map[string]structfs.Node{
		"/":    structfs.Dir(0o755),
		"/d/n": structfs.CharDevice(0o620, 4, 0x12345),
		"/f":   file,
		"/l":   structfs.Symlink("f"),
	} {
		if err := tree.Place(p, n); err != nil {
			t.Fatal(err)
		}
	}
	const mtime = 0x6543210f
	// Headers plus names are padded to 4 bytes, and so is content.
	want := hdr(".", 1, 0o40755, 0, 0, 3, mtime, 0, 0, 0) +
		hdr("d", 2, 0o40555, 0, 0, 2, mtime, 0, 0, 0) +
		hdr("d/n", 3, 0o20620, 0, 0, 1, mtime, 0, 4, 0x12345) + "\x00\x00" +
		hdr("f", 4, 0o100644, 1000, 1001, 1, mtime, 5, 0, 0) + "hello\x00\x00\x00" +
		hdr("l", 5, 0o120777, 0, 0, 1, mtime, 1, 0, 0) + "f\x00\x00\x00" +
		hdr("TRAILER!!!", 0, 0, 0, 0, 1, 0, 0, 0, 0) + "\x00\x00\x00"
	var buf bytes.Buffer
	if err := Write(&buf, &tree, Options{ModTime: mtime}); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != want {
		t.Errorf("archive differs\n got %q\nwant %q", got, want)
	}
}

func TestReproducible(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(io.Writer, *structfs.Tree, Options) error
	}{
		{"plain", Write},
		{"zstd", WriteCompressed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Two trees built alike, with Place calls in a different order
			// and host files in different directories.
			var outs [2]bytes.Buffer
			for i := range outs {
				if err := tc.write(&outs[i], structfstest.Sample(t), Options{ModTime: 1700000000}); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(outs[0].Bytes(), outs[1].Bytes()) {
				t.Error("two writes of the same tree differ")
			}
		})
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

// failingWriter fails every write after the first n bytes.
type failingWriter struct{ n int }

var errWrite = errors.New("disk full")

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errWrite
	}
	w.n -= len(p)
	return len(p), nil
}

func TestWriteErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		blob structfs.Blob
		out  io.Writer
		want string
	}{
		{"short content", lyingBlob{10, "12345"}, io.Discard, "cpio: writing /etc/file: content ended after 5 of 10 bytes"},
		{"long content", lyingBlob{3, "12345"}, io.Discard, "cpio: writing /etc/file: content is longer than its size of 3 bytes"},
		{"too large", lyingBlob{math.MaxUint32 + 1, ""}, io.Discard, "cpio: writing /etc/file: 4294967296 bytes are more than newc's limit"},
		{"output fails", structfs.Bytes(make([]byte, 1<<20)), &failingWriter{n: 1000}, errWrite.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tree structfs.Tree
			if err := tree.Place("/etc/file", structfs.File(0o644, tc.blob)); err != nil {
				t.Fatal(err)
			}
			err := Write(tc.out, &tree, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Write = %v, want error containing %q", err, tc.want)
			}
		})
	}
}
