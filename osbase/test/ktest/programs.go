package ktest

import (
	"context"
	"fmt"
	"path/filepath"

	"metropolis.dev/build/debian"
	"metropolis.dev/build/elfdeps"
	"metropolis.dev/osbase/structfs"
)

// Program is a dynamically linked program from pinned Debian packages,
// which the VM gets with exactly the shared libraries it loads, as the
// node image ships such programs.
type Program struct {
	// PinFile pins the packages that hold the program and every library
	// it loads (see metropolis.dev/build/debian), relative to the Go
	// module's root, such as "third_party/xfsprogs/pins.txt".
	PinFile string
	// Source is the program's path in the packages, such as
	// "sbin/mkfs.xfs".
	Source string
	// Path is where the VM has it, such as "/bin/mkfs.xfs". The
	// libraries go to their paths in the packages.
	Path string
}

// placePrograms places the programs and their libraries into t.
func placePrograms(ctx context.Context, t *structfs.Tree, moduleRoot string, programs []Program) error {
	// Programs share libraries; each file is placed once.
	placed := make(map[string]bool)
	for _, p := range programs {
		if err := placeProgram(ctx, t, moduleRoot, p, placed); err != nil {
			return fmt.Errorf("ktest: program %s from %s: %w", p.Source, p.PinFile, err)
		}
	}
	return nil
}

func placeProgram(ctx context.Context, t *structfs.Tree, moduleRoot string, p Program, placed map[string]bool) error {
	pins, err := debian.ReadPins(filepath.Join(moduleRoot, filepath.FromSlash(p.PinFile)))
	if err != nil {
		return err
	}
	root, err := debian.UnpackPinned(ctx, pins)
	if err != nil {
		return err
	}
	closure, err := elfdeps.Resolve(root, p.Source)
	if err != nil {
		return err
	}
	blob, err := structfs.HostFile(filepath.Join(root, filepath.FromSlash(p.Source)))
	if err != nil {
		return err
	}
	if err := t.Place(p.Path, structfs.File(0o555, blob)); err != nil {
		return err
	}
	var files []elfdeps.File
	for _, f := range closure.Files {
		if !placed[f.Path] {
			placed[f.Path] = true
			files = append(files, f)
		}
	}
	return elfdeps.PlaceFiles(t, root, files)
}
