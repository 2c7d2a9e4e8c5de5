package version

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	nodeversion "metropolis.dev/metropolis/version"
)

const testCommit = "0d8a8a4f52a7c1e2b3d4e5f60718293a4b5c6d7e"

func TestString(t *testing.T) {
	for _, tc := range []struct {
		v    Version
		want string
	}{
		{Version{Release: firstRelease, CommitsSinceRelease: 494, Commit: testCommit, Dirty: true}, "v0.1.0-dev494.g0d8a8a4f.dirty"},
		{Version{Release: firstRelease, CommitsSinceRelease: 494, Commit: testCommit}, "v0.1.0-dev494.g0d8a8a4f"},
		{Version{Release: nodeversion.Release{Major: 1, Minor: 20, Patch: 3}, Commit: testCommit}, "v1.20.3"},
		{Version{Release: nodeversion.Release{Major: 1, Minor: 20, Patch: 3}, Commit: testCommit, Dirty: true}, "v1.20.3-dev0.g0d8a8a4f.dirty"},
		{Version{Release: firstRelease, CommitsSinceRelease: 1, Commit: "abc"}, "v0.1.0-dev1.gabc"},
	} {
		if got := tc.v.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.v, got, tc.want)
		}
	}
}

// TestLDFlags builds a program with the flags and checks that it reports the
// stamped version.
func TestLDFlags(t *testing.T) {
	v := Version{Release: firstRelease, CommitsSinceRelease: 7, Commit: testCommit, Dirty: true}
	bin := filepath.Join(t.TempDir(), "printversion")
	build := exec.Command("go", "build", "-ldflags", v.LDFlags(), "-o", bin, "./testdata/printversion")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("running the stamped program: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != v.String() {
		t.Errorf("stamped program printed %q, want %q", got, v.String())
	}
}
