package uki

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"metropolis.dev/build/debian"
)

// The pinned Debian package with the stub, and where in it the stub is.
const (
	// StubPinFile is the pin file, relative to the repository's root.
	StubPinFile       = "third_party/systemd-boot-efi/" + debian.PinFile
	stubPackage       = "systemd-boot-efi"
	stubPathInPackage = "usr/lib/systemd/boot/efi/linuxx64.efi.stub"
)

// PinnedStub returns systemd's x86-64 UEFI stub from the package pinned in
// the repository at repoRoot, fetching the package if it is not cached yet.
func PinnedStub(ctx context.Context, repoRoot string) ([]byte, error) {
	pins, err := debian.ReadPins(filepath.Join(repoRoot, StubPinFile))
	if err != nil {
		return nil, err
	}
	var pin *debian.Pin
	for i := range pins {
		if pins[i].Package == stubPackage {
			pin = &pins[i]
		}
	}
	if pin == nil {
		return nil, fmt.Errorf("%s pins no %s package", StubPinFile, stubPackage)
	}
	deb, err := debian.Fetch(ctx, *pin)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "uki-stub-")
	if err != nil {
		return nil, fmt.Errorf("unpacking the stub: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := debian.Unpack(deb, dir); err != nil {
		return nil, err
	}
	stub, err := os.ReadFile(filepath.Join(dir, stubPathInPackage))
	if err != nil {
		return nil, fmt.Errorf("reading the stub from %s: %w", pin, err)
	}
	return stub, nil
}
