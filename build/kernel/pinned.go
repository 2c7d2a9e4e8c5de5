package kernel

import (
	"context"
	"fmt"
	"path/filepath"

	"metropolis.dev/build/debian"
)

// PinFile is the pin file of the kernel package, relative to the
// repository root.
var PinFile = filepath.Join("third_party", "linux", debian.PinFile)

// ModuleListFile lists the modules the node needs, relative to the
// repository root.
var ModuleListFile = filepath.Join("third_party", "linux", "modules.txt")

// Pinned fetches and unpacks (both cached, see debian.UnpackPinned) the
// kernel package pinned in the repository at repoRoot, and opens it. Builds
// and tests that need the kernel all come through here, so they share one
// cached copy.
func Pinned(ctx context.Context, repoRoot string) (*Package, error) {
	pinPath := filepath.Join(repoRoot, PinFile)
	pins, err := debian.ReadPins(pinPath)
	if err != nil {
		return nil, err
	}
	dir, err := debian.UnpackPinned(ctx, pins)
	if err != nil {
		return nil, fmt.Errorf("unpacking the kernel pinned in %s: %w", pinPath, err)
	}
	return OpenPackage(dir)
}
