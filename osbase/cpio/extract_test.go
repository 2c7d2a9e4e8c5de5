package cpio

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"metropolis.dev/osbase/structfs/structfstest"
)

// TestExtractWithCpio unpacks an archive with GNU cpio, as root so that
// owners and device nodes are restored, and compares the result with the
// tree. This checks that the format is understood by an independent reader
// the way we mean it, including modes, owners and device numbers.
func TestExtractWithCpio(t *testing.T) {
	cpioTool := structfstest.RequireTool(t, "cpio", "cpio")
	tree := structfstest.Sample(t)
	const modTime = 1700000000
	archive := filepath.Join(t.TempDir(), "initramfs.cpio")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(f, tree, Options{ModTime: modTime}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command(cpioTool, "--extract", "--make-directories", "--preserve-modification-time",
		"--no-absolute-filenames", "--quiet", "--file", archive, "--directory", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio: %v\n%s", err, out)
	}
	// The golden test checks the times in the archive instead.
	if err := structfstest.Diff(tree, dir, structfstest.DiffOptions{IgnoreModTime: true}); err != nil {
		t.Errorf("extracted archive differs from the tree:\n%v", err)
	}
}
