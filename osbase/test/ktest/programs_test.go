package ktest

import (
	"context"
	"strings"
	"testing"

	"metropolis.dev/osbase/structfs"
)

// TestPlacePrograms places the node's mkfs.xfs next to a module tree, as
// Run does: the program at its path, and its loader and libraries at
// theirs.
func TestPlacePrograms(t *testing.T) {
	root, err := goModuleRoot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var tree structfs.Tree
	if err := tree.Place("/lib/modules", structfs.Dir(0o755)); err != nil {
		t.Fatal(err)
	}
	programs := []Program{
		{PinFile: "third_party/xfsprogs/pins.txt", Source: "sbin/mkfs.xfs", Path: "/bin/mkfs.xfs"},
		// A second program from the same packages shares the libraries.
		{PinFile: "third_party/xfsprogs/pins.txt", Source: "sbin/mkfs.xfs", Path: "/bin/mkfs.xfs.again"},
	}
	if err := placePrograms(context.Background(), &tree, root, programs); err != nil {
		t.Fatal(err)
	}
	got := make(map[string]structfs.Entry)
	if err := tree.Walk(func(e structfs.Entry) error {
		got[e.Path] = e
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/bin/mkfs.xfs", "/bin/mkfs.xfs.again"} {
		if e := got[p]; e.Type != structfs.TypeFile || e.Mode != 0o555 {
			t.Errorf("%s is %+v, want an executable file", p, e)
		}
	}
	var libc, loader bool
	for p := range got {
		libc = libc || strings.HasPrefix(p, "/lib/x86_64-linux-gnu/libc.so")
		loader = loader || strings.HasSuffix(p, "/ld-linux-x86-64.so.2")
	}
	if !libc || !loader {
		t.Errorf("the tree lacks libc (%v) or the dynamic loader (%v)", libc, loader)
	}
	if got["/lib/modules"].Type != structfs.TypeDir {
		t.Error("the module tree is gone")
	}

	bad := []Program{{PinFile: "third_party/xfsprogs/pins.txt", Source: "sbin/no-such-program", Path: "/bin/x"}}
	if err := placePrograms(context.Background(), &structfs.Tree{}, root, bad); err == nil || !strings.Contains(err.Error(), "sbin/no-such-program") {
		t.Errorf("placing a missing program: %v", err)
	}
}
