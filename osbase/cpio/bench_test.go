package cpio

import (
	"io"
	"os"
	"testing"

	"metropolis.dev/osbase/structfs"
)

// countingWriter counts what is written to it.
type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

// BenchmarkWrite archives a Go binary, the test binary itself, as a
// stand-in for the initramfs's init.
func BenchmarkWrite(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	blob, err := structfs.HostFile(exe)
	if err != nil {
		b.Fatal(err)
	}
	var tree structfs.Tree
	if err := tree.Place("/init", structfs.File(0o755, blob)); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name  string
		write func(io.Writer, *structfs.Tree, Options) error
	}{
		{"plain", Write},
		{"zstd", WriteCompressed},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(blob.Size())
			var out countingWriter
			for b.Loop() {
				out = countingWriter{}
				if err := bc.write(&out, &tree, Options{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(out.n), "archive-bytes")
		})
	}
}
