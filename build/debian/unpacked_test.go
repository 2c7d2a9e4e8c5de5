package debian

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUnpackPinnedReusesCache(t *testing.T) {
	cache := t.TempDir()
	dlA := &fakeDownloader{content: testDeb(t, dir("./etc/"), file("./etc/a", "from a"))}
	dlB := &fakeDownloader{content: testDeb(t, dir("./etc/"), file("./etc/b", "from b"))}
	pinA, pinB := pinFor(dlA.content), pinFor(dlB.content)
	pinB.Package = "otherpkg"
	// Both packages come from one fake apt, which serves by package.
	download := func(ctx context.Context, pin Pin, dir string) error {
		if pin.Package == pinB.Package {
			return dlB.download(ctx, pin, dir)
		}
		return dlA.download(ctx, pin, dir)
	}

	first, err := unpackPinned(t.Context(), []Pin{pinA, pinB}, cache, download)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"etc/a": "from a", "etc/b": "from b"} {
		if got, err := os.ReadFile(filepath.Join(first, name)); err != nil || string(got) != want {
			t.Errorf("%s holds %q (%v), want %q", name, got, err, want)
		}
	}
	// The same packages in another order are the same tree.
	second, err := unpackPinned(t.Context(), []Pin{pinB, pinA}, cache, download)
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Errorf("got directories %s and %s for the same packages", first, second)
	}
	if dlA.calls != 1 || dlB.calls != 1 {
		t.Errorf("downloaded %d and %d times, want once each", dlA.calls, dlB.calls)
	}
	only, err := unpackPinned(t.Context(), []Pin{pinA}, cache, download)
	if err != nil {
		t.Fatal(err)
	}
	if only == first {
		t.Error("different packages share a directory")
	}
	if _, err := os.Stat(filepath.Join(only, "etc/b")); err == nil {
		t.Error("etc/b unpacked for a set without the package holding it")
	}
	entries, err := os.ReadDir(filepath.Join(cache, "unpacked"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("unpack cache holds %d entries, want 2", len(entries))
	}
}

func TestUnpackPinnedFailure(t *testing.T) {
	cache := t.TempDir()
	good := &fakeDownloader{content: testDeb(t, file("./a", "x"))}
	bad := func(context.Context, Pin, string) error { return errors.New("mirror down") }
	_, err := unpackPinned(t.Context(), []Pin{pinFor(good.content)}, cache, bad)
	if err == nil || !strings.Contains(err.Error(), "mirror down") {
		t.Fatalf("got error %v, want the download's", err)
	}
	entries, err := os.ReadDir(filepath.Join(cache, "unpacked"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("a failed unpack left %d entries in the cache", len(entries))
	}
	if _, err := unpackPinned(t.Context(), nil, cache, bad); err == nil {
		t.Error("unpacking no pins succeeded")
	}
}
