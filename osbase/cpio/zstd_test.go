package cpio

import (
	"bytes"
	"os/exec"
	"testing"

	"github.com/klauspost/compress/zstd"

	"metropolis.dev/osbase/structfs"
	"metropolis.dev/osbase/structfs/structfstest"
)

// largeTree is the sample tree plus enough content to need several zstd
// blocks and more than one window.
func largeTree(t *testing.T) *structfs.Tree {
	tree := structfstest.Sample(t)
	text := bytes.Repeat([]byte("compressible initramfs content "), 300000)
	for p, b := range map[string][]byte{
		"/big/random": structfstest.Pseudorandom(9, 1<<20),
		"/big/text":   text,
	} {
		if err := tree.Place(p, structfs.File(0o644, structfs.Bytes(b))); err != nil {
			t.Fatal(err)
		}
	}
	return tree
}

// TestCompressedWithZstdTool decompresses with the reference zstd tool, as a
// stand-in for the kernel's decompressor, which shares its code base.
func TestCompressedWithZstdTool(t *testing.T) {
	zstdTool := structfstest.RequireTool(t, "zstd", "zstd")
	tree := largeTree(t)
	var plain, compressed bytes.Buffer
	if err := Write(&plain, tree, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := WriteCompressed(&compressed, tree, Options{}); err != nil {
		t.Fatal(err)
	}
	if compressed.Len() >= plain.Len() {
		t.Errorf("compressed archive has %d bytes, not less than the %d of the plain one", compressed.Len(), plain.Len())
	}
	cmd := exec.Command(zstdTool, "--decompress", "--stdout", "--quiet")
	cmd.Stdin = &compressed
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("zstd: %v\n%s", err, stderr.String())
	}
	if !bytes.Equal(got, plain.Bytes()) {
		t.Errorf("zstd decompressed %d bytes that differ from the %d of the plain archive", len(got), plain.Len())
	}
}

// TestCompressedFrame checks the properties the kernel relies on: a window
// it is willing to allocate, and a checksum.
func TestCompressedFrame(t *testing.T) {
	var compressed bytes.Buffer
	if err := WriteCompressed(&compressed, largeTree(t), Options{}); err != nil {
		t.Fatal(err)
	}
	var h zstd.Header
	if err := h.Decode(compressed.Bytes()); err != nil {
		t.Fatal(err)
	}
	window := h.WindowSize
	if h.SingleSegment {
		window = h.FrameContentSize
	}
	if window == 0 || window > zstdWindow {
		t.Errorf("frame window is %d bytes (single segment: %v), want at most %d", window, h.SingleSegment, zstdWindow)
	}
	if !h.HasCheckSum {
		t.Error("frame has no content checksum")
	}
}
