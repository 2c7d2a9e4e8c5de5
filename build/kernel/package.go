package kernel

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"metropolis.dev/osbase/kmod"
)

// Package is an unpacked Debian kernel image package, such as
// linux-image-6.1.0-56-amd64: a kernel at boot/vmlinuz-<release> and its
// modules under lib/modules/<release>, without modules.dep or any other
// index, which Debian generates only when the package is installed.
type Package struct {
	// Root is the directory the package was unpacked into.
	Root string
	// Release is the kernel release, as uname -r reports it.
	Release string

	modules map[string]*Module
	// builtin holds the modules compiled into the kernel.
	builtin map[string]bool
	// builtinList is modules.builtin as the package ships it.
	builtinList []byte
}

// A Module is one loadable module of a Package, as its .modinfo section
// describes it.
type Module struct {
	// Name is the module's name, with _ rather than -.
	Name string
	// Path is the module's file, relative to the module directory
	// lib/modules/<release>.
	Path string
	// Depends names the modules that must be loaded before this one.
	Depends []string
	// Softdeps holds the soft dependency records, such as
	// "pre: crc32c". Some modules carry malformed ones, so they are
	// parsed only for the modules that are installed.
	Softdeps []string
	// Aliases are the patterns of the devices and names the module
	// handles.
	Aliases []string
	// Size is the size of the module file in bytes.
	Size int64
}

// moduleDir is where a package keeps the modules of a release.
func moduleDir(release string) string {
	return path.Join("lib", "modules", release)
}

// OpenPackage reads the module metadata of the kernel package unpacked at
// root. The package must hold exactly one kernel release.
func OpenPackage(root string) (*Package, error) {
	releases, err := os.ReadDir(filepath.Join(root, "lib", "modules"))
	if err != nil {
		return nil, fmt.Errorf("finding the kernel release: %w", err)
	}
	if len(releases) != 1 || !releases[0].IsDir() {
		return nil, fmt.Errorf("want exactly one kernel release in %s, found %d entries", filepath.Join(root, "lib", "modules"), len(releases))
	}
	p := &Package{
		Root:    root,
		Release: releases[0].Name(),
		modules: make(map[string]*Module),
		builtin: make(map[string]bool),
	}
	if _, err := os.Stat(p.Vmlinuz()); err != nil {
		return nil, fmt.Errorf("finding the kernel image: %w", err)
	}
	if err := p.readBuiltin(); err != nil {
		return nil, err
	}
	if err := p.readModules(); err != nil {
		return nil, err
	}
	return p, nil
}

// Vmlinuz is the path of the kernel image (a bzImage).
func (p *Package) Vmlinuz() string {
	return filepath.Join(p.Root, "boot", "vmlinuz-"+p.Release)
}

func (p *Package) modulePath(rel string) string {
	return filepath.Join(p.Root, filepath.FromSlash(moduleDir(p.Release)), filepath.FromSlash(rel))
}

func (p *Package) readBuiltin() error {
	data, err := os.ReadFile(p.modulePath(kmod.BuiltinFile))
	if err != nil {
		return fmt.Errorf("reading built-in module list: %w", err)
	}
	p.builtinList = data
	s := bufio.NewScanner(strings.NewReader(string(data)))
	for s.Scan() {
		if line := strings.TrimSpace(s.Text()); line != "" {
			p.builtin[moduleName(line)] = true
		}
	}
	return s.Err()
}

// moduleName returns the name of the module in a .ko file.
func moduleName(file string) string {
	return normalizeName(strings.TrimSuffix(path.Base(file), ".ko"))
}

// normalizeName returns the kernel's spelling of a module name, in which
// - and _ are the same.
func normalizeName(name string) string {
	return strings.ReplaceAll(name, "-", "_")
}

// readModules reads the .modinfo of every module in the package. It takes
// a second or two for the few thousand modules of a distribution kernel,
// and lets soft dependencies on aliases of any module be resolved.
func (p *Package) readModules() error {
	dir := p.modulePath("")
	err := filepath.WalkDir(dir, func(file string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		switch {
		case d.IsDir():
			return nil
		case strings.HasSuffix(name, ".ko.xz"), strings.HasSuffix(name, ".ko.zst"), strings.HasSuffix(name, ".ko.gz"):
			// Debian 12 ships uncompressed modules. Later releases
			// compress them; supporting that means decompressing
			// here, as finit_module is given uncompressed files.
			return fmt.Errorf("%s: compressed modules are not supported", file)
		case !strings.HasSuffix(name, ".ko"):
			return nil
		}
		rel, err := filepath.Rel(dir, file)
		if err != nil {
			return err
		}
		m, err := readModule(file, filepath.ToSlash(rel), p.Release)
		if err != nil {
			return fmt.Errorf("module %s: %w", rel, err)
		}
		if other, ok := p.modules[m.Name]; ok {
			return fmt.Errorf("module %s is both %s and %s", m.Name, other.Path, m.Path)
		}
		p.modules[m.Name] = m
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading modules: %w", err)
	}
	return nil
}

func readModule(file, rel, release string) (*Module, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	info, err := readModinfo(f)
	if err != nil {
		return nil, err
	}
	m := &Module{Name: moduleName(rel), Path: rel, Softdeps: info["softdep"], Aliases: info["alias"], Size: st.Size()}
	// The name the kernel will know the module by must be the one
	// modules.dep implies through the file name.
	if name, err := info.get("name"); err != nil || normalizeName(name) != m.Name {
		return nil, fmt.Errorf("module calls itself %q (%v), its file name says %q", name, err, m.Name)
	}
	// A module built for another kernel would fail to load at boot;
	// better to notice when building.
	vermagic, err := info.get("vermagic")
	if err != nil {
		return nil, err
	}
	if got, _, _ := strings.Cut(vermagic, " "); got != release {
		return nil, fmt.Errorf("module is built for kernel %q, not %q", got, release)
	}
	deps, err := info.depends()
	if err != nil {
		return nil, err
	}
	for _, d := range deps {
		m.Depends = append(m.Depends, normalizeName(d))
	}
	slices.Sort(m.Depends)
	return m, nil
}

// Module returns the loadable module called name, or nil.
func (p *Package) Module(name string) *Module {
	return p.modules[normalizeName(name)]
}

// IsBuiltin tells whether the module called name is compiled into the
// kernel.
func (p *Package) IsBuiltin(name string) bool {
	return p.builtin[normalizeName(name)]
}

// ErrUnknownModule is returned for module names the package has neither
// as a loadable nor as a built-in module.
var ErrUnknownModule = errors.New("unknown module")
