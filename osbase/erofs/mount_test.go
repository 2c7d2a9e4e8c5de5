package erofs

import (
	"os/exec"
	"testing"

	"metropolis.dev/osbase/structfs/structfstest"
)

// TestMount mounts an image with the kernel's EROFS driver and compares
// what the kernel sees with the tree. It needs root and loop devices, and
// fails rather than skips without them: this is the check that matters.
func TestMount(t *testing.T) {
	tree := structfstest.Sample(t)
	image := writeImage(t, tree, Options{ModTime: modTime})
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "erofs", "-o", "loop,ro", image, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("mounting the image (needs root, loop devices and the erofs module): %v\n%s", err, out)
	}
	// Registered after TempDir's cleanup, so it runs before it.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("unmounting %s: %v\n%s", dir, err, out)
		}
	})
	if err := structfstest.Diff(tree, dir, structfstest.DiffOptions{ModTime: modTime}); err != nil {
		t.Errorf("mounted image differs from the tree:\n%v", err)
	}
}

// TestFsck checks the image with erofs-utils, an implementation independent
// of both the writer and the kernel, then extracts it and compares.
func TestFsck(t *testing.T) {
	fsck := structfstest.RequireTool(t, "fsck.erofs", "erofs-utils")
	tree := structfstest.Sample(t)
	image := writeImage(t, tree, Options{ModTime: modTime})
	dir := t.TempDir()
	out, err := exec.Command(fsck, "--extract="+dir, "--force", "--preserve", image).CombinedOutput()
	if err != nil {
		t.Fatalf("fsck.erofs: %v\n%s", err, out)
	}
	// TestMount checks setuid and setgid bits, which fsck.erofs drops.
	opts := structfstest.DiffOptions{ModTime: modTime, IgnoreSetID: true}
	if err := structfstest.Diff(tree, dir, opts); err != nil {
		t.Errorf("image extracted by fsck.erofs differs from the tree:\n%v", err)
	}
}
