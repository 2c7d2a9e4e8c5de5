package structfs

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// listing renders a tree as one line per node, in walk order.
func listing(t *testing.T, tree *Tree) []string {
	t.Helper()
	var lines []string
	err := tree.Walk(func(e Entry) error {
		line := fmt.Sprintf("%s %v %#o %d:%d links=%d", e.Path, e.Type, e.UnixMode(), e.UID, e.GID, e.Links)
		switch e.Type {
		case TypeSymlink:
			line += " -> " + e.Target
		case TypeCharDevice, TypeBlockDevice:
			line += fmt.Sprintf(" dev=%d:%d", e.Major, e.Minor)
		case TypeFile:
			line += fmt.Sprintf(" size=%d", e.Blob.Size())
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return lines
}

type placement struct {
	path string
	node Node
}

func placeAll(t *testing.T, ps []placement) *Tree {
	t.Helper()
	var tree Tree
	for _, p := range ps {
		if err := tree.Place(p.path, p.node); err != nil {
			t.Fatalf("Place(%q): %v", p.path, err)
		}
	}
	return &tree
}

func TestWalkOrderAndImplicitParents(t *testing.T) {
	owned := File(0o600, Bytes([]byte("x")))
	owned.UID, owned.GID = 1000, 100
	ps := []placement{
		{"/dev/null", CharDevice(0o666, 1, 3)},
		{"/dev/sda", BlockDevice(0o660, 8, 0)},
		{"/etc/machine-id", Symlink("/ephemeral/machine-id")},
		{"/etc", Dir(0o755)},
		{"/b", owned},
		{"/a/z/file", File(0o644, Bytes([]byte("hello")))},
		{"/a/y", Dir(fs.ModeSticky | 0o777)},
		{"/A", Dir(0o700)},
		{"/", Dir(0o755)},
	}
	want := []string{
		"/ directory 040755 0:0 links=6",
		"/A directory 040700 0:0 links=2",
		"/a directory 040555 0:0 links=4",
		"/a/y directory 041777 0:0 links=2",
		"/a/z directory 040555 0:0 links=2",
		"/a/z/file regular file 0100644 0:0 links=1 size=5",
		"/b regular file 0100600 1000:100 links=1 size=1",
		"/dev directory 040555 0:0 links=2",
		"/dev/null character device 020666 0:0 links=1 dev=1:3",
		"/dev/sda block device 060660 0:0 links=1 dev=8:0",
		"/etc directory 040755 0:0 links=2",
		"/etc/machine-id symbolic link 0120777 0:0 links=1 -> /ephemeral/machine-id",
	}
	// Every order of the same Place calls must give the same walk.
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20 {
		got := listing(t, placeAll(t, ps))
		if !slices.Equal(got, want) {
			t.Fatalf("order %d: walk gave\n%s\nwant\n%s", i, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		r.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
	}
}

func TestZeroTree(t *testing.T) {
	var tree Tree
	got := listing(t, &tree)
	want := []string{"/ directory 040555 0:0 links=2"}
	if !slices.Equal(got, want) {
		t.Errorf("empty tree walks as %q, want %q", got, want)
	}
}

func TestWalkStopsAtError(t *testing.T) {
	tree := placeAll(t, []placement{
		{"/a", Dir(0o755)},
		{"/b", Dir(0o755)},
	})
	stop := errors.New("stop")
	var visited []string
	err := tree.Walk(func(e Entry) error {
		visited = append(visited, e.Path)
		if e.Path == "/a" {
			return stop
		}
		return nil
	})
	if err != stop {
		t.Errorf("Walk returned %v, want the callback's error unchanged", err)
	}
	if want := []string{"/", "/a"}; !slices.Equal(visited, want) {
		t.Errorf("visited %q, want %q", visited, want)
	}
}

func TestPlaceErrors(t *testing.T) {
	file := File(0o644, Bytes(nil))
	existing := []placement{
		{"/etc/hosts", file},
		{"/etc/ssl", Dir(0o755)},
		{"/dev/null", CharDevice(0o666, 1, 3)},
	}
	for _, tc := range []struct {
		name string
		path string
		node Node
		want error
		// msg must appear in the error, which also always names the path.
		msg string
	}{
		{"relative", "etc/x", file, ErrInvalidPath, "not absolute"},
		{"empty", "", file, ErrInvalidPath, "not absolute"},
		{"trailing slash", "/etc/x/", file, ErrInvalidPath, "empty component"},
		{"double slash", "/etc//x", file, ErrInvalidPath, "empty component"},
		{"dot", "/etc/./x", file, ErrInvalidPath, `"." component`},
		{"dotdot", "/etc/../x", file, ErrInvalidPath, `".." component`},
		{"NUL", "/etc/a\x00b", file, ErrInvalidPath, "NUL"},
		{"long name", "/" + strings.Repeat("x", 256), file, ErrInvalidPath, "longer than 255"},
		{"duplicate file", "/etc/hosts", file, ErrExist, "regular file was placed there before"},
		{"duplicate dir", "/etc/ssl", Dir(0o755), ErrExist, "directory was placed there before"},
		{"file over implicit dir", "/etc", file, ErrExist, "cannot become a regular file"},
		{"file over implicit root", "/", file, ErrExist, "cannot become a regular file"},
		{"below file", "/etc/hosts/x", file, ErrNotDir, `parent "/etc/hosts" is a regular file`},
		{"below device", "/dev/null/a/b", Dir(0o755), ErrNotDir, `parent "/dev/null" is a character device`},
		{"unknown type", "/x", Node{Type: 42}, ErrInvalidNode, "unknown node type Type(42)"},
		{"file type in mode", "/x", File(fs.ModeDir|0o755, Bytes(nil)), ErrInvalidNode, "bits outside"},
		{"unix setuid bit", "/x", File(0o4755, Bytes(nil)), ErrInvalidNode, "use fs.ModeSetuid"},
		{"file without blob", "/x", File(0o644, nil), ErrInvalidNode, "nil Blob"},
		{"symlink mode", "/x", Node{Type: TypeSymlink, Mode: 0o755, Target: "y"}, ErrInvalidNode, "want 0777"},
		{"empty symlink", "/x", Symlink(""), ErrInvalidNode, "empty"},
		{"NUL symlink", "/x", Symlink("a\x00"), ErrInvalidNode, "NUL"},
		{"major", "/x", CharDevice(0o600, MaxMajor+1, 0), ErrInvalidNode, "beyond Linux limits"},
		{"minor", "/x", BlockDevice(0o600, 0, MaxMinor+1), ErrInvalidNode, "beyond Linux limits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := placeAll(t, existing)
			before := listing(t, tree)
			err := tree.Place(tc.path, tc.node)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Place(%q) = %v, want %v", tc.path, err, tc.want)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.path)) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q should name the path and contain %q", err, tc.msg)
			}
			if after := listing(t, tree); !slices.Equal(before, after) {
				t.Errorf("failed Place changed the tree:\n%s", strings.Join(after, "\n"))
			}
		})
	}
}

func TestPlaceValidNames(t *testing.T) {
	for _, p := range []string{
		"/" + strings.Repeat("x", MaxNameLen),
		"/...",
		"/.hidden",
		"/with space/and\ttab",
		"/ünïcödé",
	} {
		var tree Tree
		if err := tree.Place(p, Dir(0o755)); err != nil {
			t.Errorf("Place(%q): %v", p, err)
		}
	}
}

func TestUnixMode(t *testing.T) {
	for _, tc := range []struct {
		node Node
		want uint32
	}{
		{Dir(0o755), 0o40755},
		{Dir(fs.ModeSticky | 0o777), 0o41777},
		{File(0o644, nil), 0o100644},
		{File(0o755|fs.ModeSetuid, nil), 0o104755},
		{File(0o755|fs.ModeSetgid, nil), 0o102755},
		{Symlink("x"), 0o120777},
		{CharDevice(0o620, 4, 1), 0o20620},
		{BlockDevice(0o660, 8, 1), 0o60660},
	} {
		if got := tc.node.UnixMode(); got != tc.want {
			t.Errorf("%v %v: UnixMode() = %#o, want %#o", tc.node.Type, tc.node.Mode, got, tc.want)
		}
	}
}
