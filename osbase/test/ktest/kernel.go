package ktest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"metropolis.dev/build/debian"
	"metropolis.dev/build/kernel"
)

// A kernelTree is the kernel and a set of modules, as kernel.Install
// writes them.
type kernelTree struct {
	// dir holds the tree.
	dir string
	// vmlinux is the uncompressed kernel (see extractVmlinux).
	vmlinux string
}

// vmlinuz is the kernel image as the package has it, a bzImage.
func (k kernelTree) vmlinuz() string { return filepath.Join(k.dir, kernel.VmlinuzFile) }

// lib is the directory to place at /lib in the initramfs.
func (k kernelTree) lib() string { return filepath.Join(k.dir, "lib") }

// cacheKey names the tree of a kernel and a set of modules. The order of
// the modules and repeated names do not matter: the tree holds their
// closure under dependencies either way.
func cacheKey(kernelID string, modules []string) string {
	names := make([]string, len(modules))
	for i, m := range modules {
		names[i] = strings.ReplaceAll(m, "-", "_")
	}
	slices.Sort(names)
	names = slices.Compact(names)
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", kernelID, strings.Join(names, "\n"))
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// cacheRoot is where ktest keeps installed trees and uncompressed
// kernels, in the build cache.
func cacheRoot() (string, error) {
	root, err := debian.CacheRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "ktest-kernel"), nil
}

// getKernelTree returns the tree of the pinned kernel with the given
// modules and their dependencies, and the uncompressed kernel, from the
// cache or built on first use. The unpacked kernel package is shared with
// every other build (see kernel.Pinned), so other module sets take seconds.
func getKernelTree(ctx context.Context, moduleRoot string, modules []string) (kernelTree, error) {
	pkg, err := kernel.Pinned(ctx, moduleRoot)
	if err != nil {
		return kernelTree{}, err
	}
	root, err := cacheRoot()
	if err != nil {
		return kernelTree{}, err
	}
	// The shared unpacked package is named after the pinned packages'
	// hashes, so its name identifies the kernel.
	kernelID := filepath.Base(pkg.Root)
	tree := kernelTree{dir: filepath.Join(root, "trees", cacheKey(kernelID, modules))}
	if err := ensureDir(tree.dir, func(tmp string) error {
		sel, err := pkg.Select(modules)
		if err != nil {
			return err
		}
		return pkg.Install(tmp, sel)
	}); err != nil {
		return kernelTree{}, fmt.Errorf("installing modules %v of kernel %s: %w", modules, pkg.Release, err)
	}
	vmlinuxDir := filepath.Join(root, "vmlinux", kernelID)
	tree.vmlinux = filepath.Join(vmlinuxDir, "vmlinux")
	if err := ensureDir(vmlinuxDir, func(tmp string) error {
		return extractVmlinux(ctx, tree.vmlinuz(), filepath.Join(tmp, "vmlinux"))
	}); err != nil {
		return kernelTree{}, fmt.Errorf("extracting kernel %s: %w", pkg.Release, err)
	}
	return tree, nil
}

// ensureDir makes sure that the directory dir exists with what fill puts
// into an empty directory. fill works in a temporary directory that is
// renamed to dir when it is done, so that an interrupted fill leaves no
// partial directory behind, and test processes running at once can fill
// the same directory: the first rename wins, and the others use its result.
func ensureDir(dir string, fill func(tmp string) error) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, ".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := fill(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(dir); serr == nil {
			return nil
		}
		return err
	}
	return nil
}
