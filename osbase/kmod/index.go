package kmod

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// The files of a module directory (/lib/modules/<release>) that the index
// is read from. They have the formats kmod's depmod writes, so that
// directories prepared by either tool work.
const (
	DepFile     = "modules.dep"
	AliasFile   = "modules.alias"
	SoftdepFile = "modules.softdep"
	BuiltinFile = "modules.builtin"
)

// Index describes the modules in one module directory: where each one's
// file is, what it depends on, and which aliases it has.
type Index struct {
	modules map[string]*module
	// builtin holds the modules compiled into the kernel, which need no
	// loading.
	builtin map[string]bool
	aliases *aliasIndex
}

type module struct {
	name string
	// path is the module's file, relative to the module directory
	// unless absolute.
	path string
	// deps are the modules that must be loaded first, directly or
	// indirectly, in the order of modules.dep.
	deps []string
	// pre and post are the module's soft dependencies: modules or
	// aliases to load before and after it, if they exist.
	pre, post []string
}

// ReadIndex reads the index of the module directory dir. modules.dep and
// modules.alias must exist; modules.softdep and modules.builtin are read
// if present.
func ReadIndex(dir string) (*Index, error) {
	x := &Index{
		modules: make(map[string]*module),
		builtin: make(map[string]bool),
		aliases: newAliasIndex(),
	}
	for _, f := range []struct {
		name     string
		optional bool
		parse    func(io.Reader) error
	}{
		{DepFile, false, x.parseDeps},
		{AliasFile, false, x.aliases.parse},
		{SoftdepFile, true, x.parseSoftdeps},
		{BuiltinFile, true, x.parseBuiltin},
	} {
		err := parseFile(filepath.Join(dir, f.name), f.parse)
		if f.optional && errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
	}
	// Loading trusts that every alias leads to a loadable module.
	for _, entries := range x.aliases.byPrefix {
		for _, e := range entries {
			if x.modules[e.module] == nil {
				return nil, fmt.Errorf("%s: module %s has aliases but no entry in %s", filepath.Join(dir, AliasFile), e.module, DepFile)
			}
		}
	}
	return x, nil
}

func parseFile(path string, parse func(io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := parse(bufio.NewReader(f)); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Lookup returns the names of the modules with an alias matching s, such
// as a device's modalias, sorted.
func (x *Index) Lookup(s string) []string {
	return x.aliases.lookup(s)
}

// Modules returns the number of loadable modules in the index.
func (x *Index) Modules() int {
	return len(x.modules)
}

// normalizeName turns a module name or file name into the name the kernel
// uses, in which - and _ are the same and _ is canonical.
func normalizeName(name string) string {
	return strings.ReplaceAll(name, "-", "_")
}

// moduleName returns the name of the module in the file at p.
func moduleName(p string) (string, error) {
	base := path.Base(p)
	for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if name, ok := strings.CutSuffix(base, ext); ok && name != "" {
			return normalizeName(name), nil
		}
	}
	return "", fmt.Errorf("%q is not a module file name", p)
}

// parseDeps reads modules.dep. Each line is
//
//	PATH: [DEPENDENCY-PATH...]
//
// listing, for the module at PATH, every module it needs directly or
// indirectly. depmod orders the list so that loading it from last to first
// satisfies every dependency; loading here does not rely on that order.
func (x *Index) parseDeps(r io.Reader) error {
	type entry struct {
		m        *module
		depPaths []string
	}
	var entries []entry
	byPath := make(map[string]string)
	s := bufio.NewScanner(r)
	for line := 1; s.Scan(); line++ {
		text := strings.TrimSpace(s.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		p, deps, ok := strings.Cut(text, ":")
		if !ok {
			return fmt.Errorf("line %d: no colon in %q", line, text)
		}
		name, err := moduleName(p)
		if err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		if _, ok := x.modules[name]; ok {
			return fmt.Errorf("line %d: module %s listed twice", line, name)
		}
		m := &module{name: name, path: p}
		x.modules[name] = m
		byPath[p] = name
		entries = append(entries, entry{m, strings.Fields(deps)})
	}
	if err := s.Err(); err != nil {
		return err
	}
	// Dependencies are resolved once every module is known, because
	// modules.dep is not ordered by dependency.
	for _, e := range entries {
		for _, dp := range e.depPaths {
			dep, ok := byPath[dp]
			if !ok {
				return fmt.Errorf("module %s depends on %s, which has no entry", e.m.name, dp)
			}
			e.m.deps = append(e.m.deps, dep)
		}
	}
	return nil
}

// parseSoftdeps reads modules.softdep. Each line is
//
//	softdep MODULE [pre: NAME...] [post: NAME...]
//
// where each NAME is a module name or alias.
func (x *Index) parseSoftdeps(r io.Reader) error {
	s := bufio.NewScanner(r)
	for line := 1; s.Scan(); line++ {
		text := strings.TrimSpace(s.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		f := strings.Fields(text)
		if len(f) < 2 || f[0] != "softdep" {
			return fmt.Errorf("line %d: want \"softdep MODULE ...\", got %q", line, text)
		}
		m, ok := x.modules[normalizeName(f[1])]
		if !ok {
			// Soft dependencies only matter when loading, and
			// this module cannot be loaded from here.
			continue
		}
		var list *[]string
		for _, w := range f[2:] {
			switch w {
			case "pre:":
				list = &m.pre
			case "post:":
				list = &m.post
			default:
				if list == nil {
					return fmt.Errorf("line %d: %q comes before the first pre: or post: marker", line, w)
				}
				*list = append(*list, w)
			}
		}
	}
	return s.Err()
}

// parseBuiltin reads modules.builtin, which lists the file each built-in
// module would have if it were loadable, one per line.
func (x *Index) parseBuiltin(r io.Reader) error {
	s := bufio.NewScanner(r)
	for line := 1; s.Scan(); line++ {
		text := strings.TrimSpace(s.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		name, err := moduleName(text)
		if err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		x.builtin[name] = true
	}
	return s.Err()
}
