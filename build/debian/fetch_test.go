package debian

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeDownloader serves fixed bytes as the downloaded package and counts
// how often it was asked.
type fakeDownloader struct {
	content []byte
	calls   int
}

func (f *fakeDownloader) download(_ context.Context, pin Pin, dir string) error {
	f.calls++
	return os.WriteFile(filepath.Join(dir, pin.FileName()), f.content, 0o644)
}

func pinFor(content []byte) Pin {
	sum := sha256.Sum256(content)
	return Pin{Package: "testpkg", Version: "1.0-1", Arch: "amd64", SHA256: hex.EncodeToString(sum[:])}
}

// cacheEntries lists what a cache directory holds, to catch leftovers.
func cacheEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestFetchReusesCache(t *testing.T) {
	cache := filepath.Join(t.TempDir(), "debs")
	dl := &fakeDownloader{content: []byte("package bytes")}
	pin := pinFor(dl.content)

	first, err := fetch(t.Context(), pin, cache, dl.download)
	if err != nil {
		t.Fatal(err)
	}
	second, err := fetch(t.Context(), pin, cache, dl.download)
	if err != nil {
		t.Fatal(err)
	}
	if dl.calls != 1 {
		t.Errorf("downloaded %d times, want 1", dl.calls)
	}
	if first != second || first != filepath.Join(cache, pin.FileName()) {
		t.Errorf("got paths %s and %s, want both %s", first, second, filepath.Join(cache, pin.FileName()))
	}
	if got, err := os.ReadFile(first); err != nil || string(got) != "package bytes" {
		t.Errorf("cached file holds %q (%v)", got, err)
	}
	if got := cacheEntries(t, cache); len(got) != 1 {
		t.Errorf("cache holds %v, want only the package", got)
	}
}

func TestFetchRejectsMismatch(t *testing.T) {
	cache := t.TempDir()
	dl := &fakeDownloader{content: []byte("tampered")}
	pin := pinFor([]byte("original"))

	_, err := fetch(t.Context(), pin, cache, dl.download)
	if err == nil {
		t.Fatal("fetch accepted a download with the wrong sha256")
	}
	actual := sha256.Sum256(dl.content)
	for _, want := range []string{"sha256 mismatch", pin.SHA256, hex.EncodeToString(actual[:])} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if got := cacheEntries(t, cache); len(got) != 0 {
		t.Errorf("cache holds %v after a mismatch, want nothing", got)
	}
}

func TestFetchReplacesDamagedCache(t *testing.T) {
	cache := t.TempDir()
	dl := &fakeDownloader{content: []byte("good")}
	pin := pinFor(dl.content)
	if err := os.WriteFile(filepath.Join(cache, pin.FileName()), []byte("bad"), 0o644); err != nil {
		t.Fatal(err)
	}
	path, err := fetch(t.Context(), pin, cache, dl.download)
	if err != nil {
		t.Fatal(err)
	}
	if dl.calls != 1 {
		t.Errorf("downloaded %d times, want 1", dl.calls)
	}
	if got, _ := os.ReadFile(path); string(got) != "good" {
		t.Errorf("cached file holds %q, want %q", got, "good")
	}
}

func TestFetchDownloadFailures(t *testing.T) {
	pin := pinFor([]byte("x"))
	for _, tc := range []struct {
		name     string
		download downloader
		wantErr  string
	}{
		{
			name:     "error",
			download: func(context.Context, Pin, string) error { return errors.New("no network") },
			wantErr:  "no network",
		},
		{
			name:     "no file",
			download: func(context.Context, Pin, string) error { return nil },
			wantErr:  "got 0 .deb files",
		},
		{
			name: "two files",
			download: func(_ context.Context, _ Pin, dir string) error {
				for _, n := range []string{"a.deb", "b.deb"} {
					if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
						return err
					}
				}
				return nil
			},
			wantErr: "got 2 .deb files",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache := t.TempDir()
			_, err := fetch(t.Context(), pin, cache, tc.download)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
			}
			if got := cacheEntries(t, cache); len(got) != 0 {
				t.Errorf("cache holds %v after a failure, want nothing", got)
			}
		})
	}
}

func TestFetchRejectsInvalidPin(t *testing.T) {
	dl := &fakeDownloader{}
	pin := Pin{Package: "--option", Version: "1", Arch: "amd64", SHA256: testSHA}
	if _, err := fetch(t.Context(), pin, t.TempDir(), dl.download); err == nil {
		t.Fatal("fetch accepted an invalid pin")
	}
	if dl.calls != 0 {
		t.Error("fetch ran the downloader for an invalid pin")
	}
}

func TestCacheDir(t *testing.T) {
	for _, tc := range []struct {
		xdg, override      string
		wantRoot, wantDebs string
	}{
		{xdg: "/xdg", wantRoot: "/xdg/metropolis", wantDebs: "/xdg/metropolis/debs"},
		{xdg: "/xdg", override: "/override", wantRoot: "/override", wantDebs: "/override/debs"},
	} {
		t.Setenv("XDG_CACHE_HOME", tc.xdg)
		t.Setenv(CacheEnv, tc.override)
		if got, err := CacheRoot(); err != nil || got != tc.wantRoot {
			t.Errorf("CacheRoot with %s=%q: got %q, %v, want %q", CacheEnv, tc.override, got, err, tc.wantRoot)
		}
		if got, err := CacheDir(); err != nil || got != tc.wantDebs {
			t.Errorf("CacheDir with %s=%q: got %q, %v, want %q", CacheEnv, tc.override, got, err, tc.wantDebs)
		}
	}
}
