package erofs

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"metropolis.dev/osbase/structfs"
	"metropolis.dev/osbase/structfs/structfstest"
)

// BenchmarkWrite64MiB writes a tree of 256 files of 256 KiB in 16
// directories, roughly the shape of a root filesystem's binaries.
func BenchmarkWrite64MiB(b *testing.B) {
	const dirs, filesPerDir, fileSize = 16, 16, 256 << 10
	content := structfstest.Pseudorandom(1, dirs*filesPerDir*fileSize)
	var tree structfs.Tree
	for i := range dirs * filesPerDir {
		p := fmt.Sprintf("/dir%02d/file%02d", i/filesPerDir, i%filesPerDir)
		blob := structfs.Bytes(content[i*fileSize : (i+1)*fileSize])
		if err := tree.Place(p, structfs.File(0o755, blob)); err != nil {
			b.Fatal(err)
		}
	}
	f, err := os.Create(filepath.Join(b.TempDir(), "image.erofs"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.SetBytes(int64(len(content)))
	for b.Loop() {
		if err := f.Truncate(0); err != nil {
			b.Fatal(err)
		}
		if _, err := f.Seek(0, 0); err != nil {
			b.Fatal(err)
		}
		if err := Write(f, &tree, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	fi, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(fi.Size()), "image-bytes")
}
