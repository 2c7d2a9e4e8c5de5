package structfs

import (
	"strings"
	"testing"
)

// FuzzPlace checks that Place accepts exactly the clean absolute paths and
// that Walk then finds the node under the same spelling.
func FuzzPlace(f *testing.F) {
	for _, s := range []string{"/", "/a", "/a/b", "a", "", "//", "/a/", "/./a", "/a/..", "/a\x00", "/" + strings.Repeat("n", 256)} {
		f.Add(s, "/a")
	}
	f.Fuzz(func(t *testing.T, p, other string) {
		var tree Tree
		// A node placed before may conflict; that must be an error, not a panic.
		otherErr := tree.Place(other, File(0o644, Bytes(nil)))
		err := tree.Place(p, Symlink("target"))
		valid := validOracle(p)
		if !valid {
			if err == nil {
				t.Fatalf("Place(%q) accepted an invalid path", p)
			}
			return
		}
		if err != nil {
			if p == "/" || (otherErr == nil && conflicts(p, other)) {
				return
			}
			t.Fatalf("Place(%q) after Place(%q) = %v: %v", p, other, otherErr, err)
		}
		var found bool
		err = tree.Walk(func(e Entry) error {
			if !validOracle(e.Path) {
				t.Errorf("Walk yielded invalid path %q", e.Path)
			}
			found = found || (e.Path == p && e.Type == TypeSymlink)
			return nil
		})
		if err != nil || !found {
			t.Fatalf("Walk did not find %q (err %v)", p, err)
		}
	})
}

// validOracle is an independent statement of what a valid path is.
func validOracle(p string) bool {
	if p == "/" {
		return true
	}
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//") || strings.ContainsRune(p, 0) {
		return false
	}
	for _, c := range strings.Split(p[1:], "/") {
		if c == "." || c == ".." || len(c) > 255 {
			return false
		}
	}
	return true
}

// conflicts tells whether placing at p after a file at other must fail:
// same path, or one is inside the other.
func conflicts(p, other string) bool {
	return p == other || strings.HasPrefix(p, other+"/") || strings.HasPrefix(other, p+"/")
}
