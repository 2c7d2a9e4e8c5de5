package version

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	nodeversion "metropolis.dev/metropolis/version"
)

var testVersion = Version{
	Release:             nodeversion.Release{Major: 0, Minor: 1, Patch: 0},
	CommitsSinceRelease: 494,
	Commit:              testCommit,
	Dirty:               true,
}

func TestOSRelease(t *testing.T) {
	got := string(testVersion.OSRelease())
	want := `NAME="Metropolis"
ID="metropolis-node"
VERSION="v0.1.0-dev494.g0d8a8a4f.dirty"
VERSION_ID="v0.1.0-dev494.g0d8a8a4f.dirty"
PRETTY_NAME="Metropolis v0.1.0-dev494.g0d8a8a4f.dirty"
BUILD_ID="0d8a8a4f52a7c1e2b3d4e5f60718293a4b5c6d7e"
`
	if got != want {
		t.Errorf("OSRelease:\n%s\nwant:\n%s", got, want)
	}
}

// TestOSReleaseShell sources the file in a shell, as os-release(5) allows,
// to check the quoting.
func TestOSReleaseShell(t *testing.T) {
	path := filepath.Join(t.TempDir(), "os-release")
	if err := os.WriteFile(path, testVersion.OSRelease(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "-c", `. "$1" && printf '%s|%s|%s' "$ID" "$VERSION_ID" "$PRETTY_NAME"`, "sh", path).Output()
	if err != nil {
		t.Fatalf("sourcing os-release: %v", err)
	}
	want := "metropolis-node|v0.1.0-dev494.g0d8a8a4f.dirty|Metropolis v0.1.0-dev494.g0d8a8a4f.dirty"
	if string(out) != want {
		t.Errorf("shell read %q, want %q", out, want)
	}
}

func TestQuoteOSRelease(t *testing.T) {
	for _, s := range []string{"", "plain", `a "b" c`, `$HOME`, "`id`", `back\slash`, "ünï"} {
		out, err := exec.Command("sh", "-c", `eval "v=$1"; printf '%s' "$v"`, "sh", quoteOSRelease(s)).Output()
		if err != nil {
			t.Fatalf("shell: %v", err)
		}
		if string(out) != s {
			t.Errorf("quoteOSRelease(%q) = %s, which a shell reads as %q", s, quoteOSRelease(s), out)
		}
	}
}

func TestProductInfoJSON(t *testing.T) {
	b, err := testVersion.ProductInfoJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "id": "metropolis-node",
  "name": "Metropolis",
  "version": "v0.1.0-dev494.g0d8a8a4f.dirty",
  "release": {
    "major": 0,
    "minor": 1,
    "patch": 0
  },
  "commits_since_release": 494,
  "commit": "0d8a8a4f52a7c1e2b3d4e5f60718293a4b5c6d7e",
  "dirty": true
}
`
	if string(b) != want {
		t.Errorf("ProductInfoJSON:\n%s\nwant:\n%s", b, want)
	}
	var parsed nodeversion.ProductInfo
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&parsed); err != nil {
		t.Fatalf("the node cannot parse the product info: %v", err)
	}
	if !reflect.DeepEqual(parsed, testVersion.ProductInfo()) {
		t.Errorf("parsed %+v, want %+v", parsed, testVersion.ProductInfo())
	}
}
