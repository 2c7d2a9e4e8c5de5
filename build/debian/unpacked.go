package debian

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// UnpackPinned returns a directory holding the files of the pinned
// packages, unpacked together (see Unpack). Unpacking a kernel package
// takes seconds of xz decompression and writes hundreds of megabytes, so
// the directory is kept in the cache (in unpacked/ under CacheRoot), named
// after the packages' sha256s, and later calls for the same packages
// return it at once. It is shared by every build on the machine and must
// not be modified.
//
// A directory is published only once all packages are unpacked into it,
// by renaming it into place, so it is always complete. A build killed
// while unpacking leaves a .tmp- directory behind that is safe to delete.
func UnpackPinned(ctx context.Context, pins []Pin) (string, error) {
	root, err := CacheRoot()
	if err != nil {
		return "", err
	}
	return unpackPinned(ctx, pins, root, aptDownload)
}

func unpackPinned(ctx context.Context, pins []Pin, cacheRoot string, download downloader) (string, error) {
	if len(pins) == 0 {
		return "", errors.New("unpacking pinned packages: no pins")
	}
	var sums []string
	for _, p := range pins {
		sums = append(sums, p.SHA256)
	}
	slices.Sort(sums)
	key := sha256.Sum256([]byte(strings.Join(sums, "\n")))
	parent := filepath.Join(cacheRoot, "unpacked")
	dir := filepath.Join(parent, hex.EncodeToString(key[:]))
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}

	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("creating unpack cache: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, ".tmp-")
	if err != nil {
		return "", fmt.Errorf("creating unpack cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	// MkdirTemp creates a private directory; the files are not secret.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	for _, pin := range pins {
		deb, err := fetch(ctx, pin, filepath.Join(cacheRoot, "debs"), download)
		if err != nil {
			return "", err
		}
		if err := Unpack(deb, tmp); err != nil {
			return "", err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another build may have published the same packages first.
		if _, statErr := os.Stat(dir); statErr == nil {
			return dir, nil
		}
		return "", fmt.Errorf("publishing unpacked packages: %w", err)
	}
	return dir, nil
}
