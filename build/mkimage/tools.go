package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"metropolis.dev/build/debian"
	"metropolis.dev/build/elfdeps"
	"metropolis.dev/osbase/structfs"
)

// toolsPinFile pins the Debian packages of the programs in tools and of
// every library they load, relative to the repository.
var toolsPinFile = filepath.Join("third_party", "xfsprogs", debian.PinFile)

// tools are the Debian programs the system image ships: where each is in
// its package and where it goes in the image. Their libraries go to the
// same paths as in the packages (see build/elfdeps).
var tools = []struct{ src, dst string }{
	{"sbin/mkfs.xfs", "/bin/mkfs.xfs"},
}

// unpackTools returns the pinned packages of the tools, unpacked together.
func unpackTools(ctx context.Context, repo string) (string, error) {
	pins, err := debian.ReadPins(filepath.Join(repo, toolsPinFile))
	if err != nil {
		return "", err
	}
	return debian.UnpackPinned(ctx, pins)
}

// placeTools places the tools from root, where unpackTools unpacked them,
// and exactly the files their dynamic loader needs, into t. Every file is
// owned by root; the permissions of the libraries are those from their
// packages, so the result depends only on the pins.
func placeTools(t *structfs.Tree, root string) error {
	// Tools share libraries; each file is placed once.
	files := map[string]elfdeps.File{}
	for _, tool := range tools {
		c, err := elfdeps.Resolve(root, tool.src)
		if err != nil {
			return err
		}
		for _, f := range c.Files {
			files[f.Path] = f
		}
		fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(tool.src)))
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s in the pinned packages is not a regular file", tool.src)
		}
		blob, err := structfs.HostFile(filepath.Join(root, filepath.FromSlash(tool.src)))
		if err != nil {
			return err
		}
		if err := t.Place(tool.dst, structfs.File(0o555, blob)); err != nil {
			return fmt.Errorf("placing %s: %w", tool.dst, err)
		}
	}
	return elfdeps.PlaceFiles(t, root, slices.Collect(maps.Values(files)))
}
