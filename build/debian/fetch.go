package debian

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// CacheEnv names the environment variable that overrides where the build
// caches (see CacheRoot).
const CacheEnv = "METROPOLIS_CACHE"

// CacheRoot returns the root of the build's cache: $METROPOLIS_CACHE if
// that variable is set, else metropolis in the user's cache directory
// ($XDG_CACHE_HOME, or ~/.cache). It lies outside the repository so that
// downloads neither show up in git nor vanish with a fresh clone; deleting
// it only costs downloading and unpacking again. This package keeps
// verified packages in its debs subdirectory (CacheDir) and unpacked ones
// in unpacked (UnpackPinned); other build steps may add subdirectories of
// their own.
func CacheRoot() (string, error) {
	if dir := os.Getenv(CacheEnv); dir != "" {
		return dir, nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding the build cache (set %s): %w", CacheEnv, err)
	}
	return filepath.Join(dir, "metropolis"), nil
}

// CacheDir returns the directory Fetch keeps verified packages in, the debs
// subdirectory of CacheRoot.
func CacheDir() (string, error) {
	root, err := CacheRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "debs"), nil
}

// Fetch returns the path of the pinned package's .deb file in the cache
// (see CacheDir), downloading it with apt-get first if the cache does not
// hold a copy whose sha256 matches the pin. A download with any other sha256
// is deleted and reported as an error.
func Fetch(ctx context.Context, pin Pin) (string, error) {
	dir, err := CacheDir()
	if err != nil {
		return "", err
	}
	return fetch(ctx, pin, dir, aptDownload)
}

// A downloader places the .deb file of a pinned package into the empty
// directory dir. The file's name does not matter.
type downloader func(ctx context.Context, pin Pin, dir string) error

func fetch(ctx context.Context, pin Pin, cacheDir string, download downloader) (string, error) {
	if err := pin.Validate(); err != nil {
		return "", fmt.Errorf("fetching %s: %w", pin, err)
	}
	path := filepath.Join(cacheDir, pin.FileName())
	sum, err := fileSHA256(path)
	switch {
	case err == nil && sum == pin.SHA256:
		return path, nil
	case err == nil:
		// A cached file that no longer matches was damaged or replaced
		// after it was verified; a fresh download will tell which.
		if err := os.Remove(path); err != nil {
			return "", fmt.Errorf("removing damaged cached %s: %w", pin, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("checking cached %s: %w", pin, err)
	}

	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("creating package cache: %w", err)
	}
	// Downloading into a private directory and renaming the verified file
	// into place keeps concurrent builds from seeing partial or unverified
	// files.
	tmp, err := os.MkdirTemp(cacheDir, ".download-")
	if err != nil {
		return "", fmt.Errorf("fetching %s: %w", pin, err)
	}
	defer os.RemoveAll(tmp)
	if err := download(ctx, pin, tmp); err != nil {
		return "", fmt.Errorf("downloading %s: %w", pin, err)
	}
	debs, err := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if err != nil {
		return "", fmt.Errorf("fetching %s: %w", pin, err)
	}
	if len(debs) != 1 {
		return "", fmt.Errorf("downloading %s: got %d .deb files, want 1", pin, len(debs))
	}
	sum, err = fileSHA256(debs[0])
	if err != nil {
		return "", fmt.Errorf("verifying %s: %w", pin, err)
	}
	if sum != pin.SHA256 {
		if err := os.Remove(debs[0]); err != nil {
			return "", fmt.Errorf("removing unverified %s: %w", pin, err)
		}
		return "", fmt.Errorf("sha256 mismatch for %s: pinned %s, downloaded %s; the download was deleted", pin, pin.SHA256, sum)
	}
	if err := os.Rename(debs[0], path); err != nil {
		return "", fmt.Errorf("caching %s: %w", pin, err)
	}
	return path, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// aptDownload downloads a package with apt-get. It refreshes apt's package
// lists first only when they do not know the pinned version, because a
// refresh is slow and needs root.
func aptDownload(ctx context.Context, pin Pin, dir string) error {
	spec := pin.String()
	if err := runApt(ctx, dir, "download", "--print-uris", spec); err != nil {
		if err := runApt(ctx, dir, "update", "-qq"); err != nil {
			return fmt.Errorf("apt does not know %s and refreshing its package lists failed: %w", spec, err)
		}
	}
	return runApt(ctx, dir, "download", spec)
}

func runApt(ctx context.Context, dir string, args ...string) error {
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}
