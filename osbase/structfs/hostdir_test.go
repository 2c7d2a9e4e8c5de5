package structfs

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestPlaceHostDir(t *testing.T) {
	src := t.TempDir()
	mustRun(t, os.MkdirAll(filepath.Join(src, "kernel/fs"), 0o755))
	mustRun(t, os.WriteFile(filepath.Join(src, "modules.dep"), []byte("dep"), 0o644))
	mustRun(t, os.WriteFile(filepath.Join(src, "kernel/fs/erofs.ko"), []byte("module"), 0o600))
	mustRun(t, os.Symlink("kernel", filepath.Join(src, "link")))
	for p, mode := range map[string]os.FileMode{"": 0o750, "kernel": 0o755, "kernel/fs": 0o700, "kernel/fs/erofs.ko": os.ModeSetuid | 0o755} {
		mustRun(t, os.Chmod(filepath.Join(src, p), mode))
	}
	var tree Tree
	mustRun(t, tree.Place("/lib/firmware", Dir(0o755)))
	mustRun(t, tree.PlaceHostDir("/lib/modules", src))
	want := []string{
		"/ directory 040555 0:0 links=3",
		"/lib directory 040555 0:0 links=4",
		"/lib/firmware directory 040755 0:0 links=2",
		"/lib/modules directory 040750 0:0 links=3",
		"/lib/modules/kernel directory 040755 0:0 links=3",
		"/lib/modules/kernel/fs directory 040700 0:0 links=2",
		"/lib/modules/kernel/fs/erofs.ko regular file 0104755 0:0 links=1 size=6",
		"/lib/modules/link symbolic link 0120777 0:0 links=1 -> kernel",
		"/lib/modules/modules.dep regular file 0100644 0:0 links=1 size=3",
	}
	if got := listing(t, &tree); !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Placing the same directory again conflicts.
	if err := tree.PlaceHostDir("/lib/modules", src); err == nil {
		t.Error("placing a host directory twice succeeded")
	}
}

func TestPlaceHostDirErrors(t *testing.T) {
	src := t.TempDir()
	mustRun(t, syscall.Mkfifo(filepath.Join(src, "fifo"), 0o644))
	var tree Tree
	err := tree.PlaceHostDir("/x", src)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(src, "fifo")) || !strings.Contains(err.Error(), "unsupported file type") {
		t.Errorf("FIFO: %v, want an error naming it as unsupported", err)
	}
	err = tree.PlaceHostDir("/y", filepath.Join(src, "missing"))
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing source: %v, want an error naming it", err)
	}
	err = tree.PlaceHostDir("/y/../z", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), `".." component`) {
		t.Errorf("unclean destination: %v, want it rejected", err)
	}
}

func mustRun(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
