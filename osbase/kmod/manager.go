package kmod

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrNotFound is returned for names that are neither a module, a built-in
// module, nor an alias of a module.
var ErrNotFound = errors.New("no such module")

// A Loader inserts module files into the kernel. SyscallLoader is the real
// one; tests substitute their own.
type Loader interface {
	// LoadModule loads the module in the file at path. If the kernel
	// already has the module, the error matches unix.EEXIST.
	LoadModule(path string) error
}

// SyscallLoader loads modules with the finit_module system call, so the
// kernel reads the file itself and can check its signature against the
// file it was given. Modules must be uncompressed.
type SyscallLoader struct{}

// LoadModule implements Loader.
//
// This package's unit tests do not cover it: they cannot load the node's
// modules into the kernel of the machine running them. Only a test that
// boots the node's kernel in a VM can.
func (SyscallLoader) LoadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil {
		return fmt.Errorf("finit_module %s: %w", path, err)
	}
	return nil
}

// Manager loads modules from one module directory, each with everything it
// depends on, and remembers what it loaded. It is safe for concurrent use;
// loads happen one at a time.
type Manager struct {
	dir    string
	index  *Index
	loader Loader

	mu     sync.Mutex
	loaded map[string]bool
}

// NewManager returns a Manager for the running kernel's module directory,
// /lib/modules/<release>, that loads modules with SyscallLoader.
func NewManager() (*Manager, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return nil, fmt.Errorf("finding the kernel release: %w", err)
	}
	return NewManagerFor(filepath.Join("/lib/modules", unix.ByteSliceToString(u.Release[:])), SyscallLoader{})
}

// NewManagerFor returns a Manager for the module directory dir that loads
// modules with loader.
func NewManagerFor(dir string, loader Loader) (*Manager, error) {
	index, err := ReadIndex(dir)
	if err != nil {
		return nil, fmt.Errorf("reading module index: %w", err)
	}
	return &Manager{dir: dir, index: index, loader: loader, loaded: make(map[string]bool)}, nil
}

// Load loads the module called name (in which - and _ are the same), after
// its soft "pre" dependencies and everything it depends on, and before its
// soft "post" dependencies. Modules that are already loaded or built into
// the kernel count as loaded.
//
// If no module is called name, Load loads every module that has name as
// an alias, like modprobe does, and succeeds if at least one of them
// loads: for example, "crc32c" names both a generic and a CPU-specific
// implementation, of which the latter fails on CPUs without the
// instructions it needs.
func (m *Manager) Load(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.loadName(name, nil)
}

// LoadForModalias loads every module with an alias matching modalias, the
// string by which the kernel describes a device that needs a driver (in a
// uevent's MODALIAS or a sysfs modalias file). It returns the names of the
// matching modules that are loaded now, and an error for each that failed
// to load. Finding no module is not an error: not every device has a
// driver.
func (m *Manager) LoadForModalias(modalias string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var loaded []string
	var errs []error
	for _, name := range m.index.Lookup(modalias) {
		if err := m.loadModule(name, nil); err != nil {
			errs = append(errs, err)
			continue
		}
		loaded = append(loaded, name)
	}
	return loaded, errors.Join(errs...)
}

// loadName loads a module by name or alias. stack holds the modules whose
// loading led here, to detect cycles.
func (m *Manager) loadName(name string, stack []string) error {
	norm := normalizeName(name)
	if _, ok := m.index.modules[norm]; ok {
		return m.loadModule(norm, stack)
	}
	if m.index.builtin[norm] {
		return nil
	}
	providers := m.index.Lookup(name)
	if len(providers) == 0 {
		return fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	// Like modprobe, load every provider that can be loaded; one is
	// enough for the name to be satisfied.
	var errs []error
	for _, p := range providers {
		if err := m.loadModule(p, stack); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == len(providers) {
		return fmt.Errorf("no module for alias %s loaded: %w", name, errors.Join(errs...))
	}
	return nil
}

// loadModule loads the module called name, which the index holds.
func (m *Manager) loadModule(name string, stack []string) error {
	if m.loaded[name] {
		return nil
	}
	if slices.Contains(stack, name) {
		return fmt.Errorf("module %s depends on itself through %v", name, stack)
	}
	stack = append(stack, name)
	mod := m.index.modules[name]

	for _, pre := range mod.pre {
		if err := m.loadSoft(pre, stack); err != nil {
			return fmt.Errorf("loading %s before %s: %w", pre, name, err)
		}
	}
	// modules.dep lists dependencies so that the last is loaded first.
	// Recursing makes the order right whatever it is.
	for _, dep := range slices.Backward(mod.deps) {
		if err := m.loadModule(dep, stack); err != nil {
			return fmt.Errorf("loading %s, needed by %s: %w", dep, name, err)
		}
	}
	path := mod.path
	if !filepath.IsAbs(path) {
		path = filepath.Join(m.dir, path)
	}
	if err := m.loader.LoadModule(path); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("loading %s: %w", name, err)
	}
	m.loaded[name] = true
	for _, post := range mod.post {
		if err := m.loadSoft(post, stack); err != nil {
			return fmt.Errorf("loading %s after %s: %w", post, name, err)
		}
	}
	return nil
}

// loadSoft loads a soft dependency. Soft dependencies are optional: one
// that names nothing in this module directory, or that is already being
// loaded further up, is skipped.
func (m *Manager) loadSoft(name string, stack []string) error {
	if slices.Contains(stack, normalizeName(name)) {
		return nil
	}
	err := m.loadName(name, stack)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}
