package kernel

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"metropolis.dev/osbase/kmod"
)

// VmlinuzFile is the name of the kernel image in an installed tree.
const VmlinuzFile = "vmlinuz"

// Install writes the kernel image and the selected modules into the
// directory out, which must not exist or be empty:
//
//	out/vmlinuz                                 the kernel image
//	out/lib/modules/<release>/kernel/...        the module files
//	out/lib/modules/<release>/modules.dep       dependencies
//	out/lib/modules/<release>/modules.alias     device aliases
//	out/lib/modules/<release>/modules.softdep   soft dependencies
//	out/lib/modules/<release>/modules.builtin   built-in modules
//
// The index files have the formats of kmod's depmod, which
// metropolis.dev/osbase/kmod reads on the node; Install reads them back
// with it to check them. Their contents are sorted, so the same package
// and selection always give the same files.
func (p *Package) Install(out string, sel *Selection) error {
	if err := ensureEmpty(out); err != nil {
		return err
	}
	if err := copyFile(p.Vmlinuz(), filepath.Join(out, VmlinuzFile)); err != nil {
		return fmt.Errorf("installing kernel image: %w", err)
	}
	modDir := filepath.Join(out, filepath.FromSlash(moduleDir(p.Release)))
	// Created here as well as by the module copies, for kernels that need
	// no modules at all.
	if err := os.MkdirAll(modDir, 0o755); err != nil {
		return fmt.Errorf("creating module directory: %w", err)
	}
	for _, m := range sel.Modules {
		if err := copyFile(p.modulePath(m.Path), filepath.Join(modDir, filepath.FromSlash(m.Path))); err != nil {
			return fmt.Errorf("installing module %s: %w", m.Name, err)
		}
	}
	files := map[string][]byte{
		kmod.DepFile:     depFile(sel),
		kmod.AliasFile:   aliasFile(sel),
		kmod.SoftdepFile: softdepFile(sel),
		kmod.BuiltinFile: p.builtinList,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(modDir, name), content, 0o644); err != nil {
			return fmt.Errorf("writing module index: %w", err)
		}
	}
	index, err := kmod.ReadIndex(modDir)
	if err != nil {
		return fmt.Errorf("checking the written module index: %w", err)
	}
	if index.Modules() != len(sel.Modules) {
		return fmt.Errorf("written module index holds %d modules, want %d", index.Modules(), len(sel.Modules))
	}
	return nil
}

func ensureEmpty(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("output directory %s is not empty", dir)
	}
	return nil
}

func copyFile(from, to string) error {
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// depFile writes modules.dep: for each module, every module it needs,
// directly or indirectly, ordered as depmod does so that loading them from
// last to first satisfies every dependency.
func depFile(sel *Selection) []byte {
	byName := make(map[string]*Module, len(sel.Modules))
	for _, m := range sel.Modules {
		byName[m.Name] = m
	}
	var b bytes.Buffer
	for _, m := range sortedByPath(sel.Modules) {
		order := loadOrder(m, byName)
		fmt.Fprintf(&b, "%s:", m.Path)
		for _, dep := range slices.Backward(order[:len(order)-1]) {
			fmt.Fprintf(&b, " %s", dep.Path)
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// loadOrder returns m and everything it depends on in an order in which
// they can be loaded, m last. Ties are broken by name, which keeps the
// order stable.
func loadOrder(m *Module, byName map[string]*Module) []*Module {
	var order []*Module
	seen := make(map[string]bool)
	var visit func(*Module)
	visit = func(m *Module) {
		if seen[m.Name] {
			return
		}
		seen[m.Name] = true
		for _, d := range m.Depends {
			visit(byName[d])
		}
		order = append(order, m)
	}
	visit(m)
	return order
}

func sortedByPath(mods []*Module) []*Module {
	sorted := slices.Clone(mods)
	slices.SortFunc(sorted, func(a, b *Module) int { return strings.Compare(a.Path, b.Path) })
	return sorted
}

// aliasFile writes modules.alias: one "alias PATTERN MODULE" line per
// alias of each module.
func aliasFile(sel *Selection) []byte {
	var b bytes.Buffer
	b.WriteString("# Aliases of the installed modules, from their .modinfo sections.\n")
	for _, m := range sel.Modules {
		for _, a := range m.Aliases {
			fmt.Fprintf(&b, "alias %s %s\n", a, m.Name)
		}
	}
	return b.Bytes()
}

// softdepFile writes modules.softdep: the soft dependencies of each module
// that has any, as "softdep MODULE pre: ... post: ...".
func softdepFile(sel *Selection) []byte {
	var b bytes.Buffer
	b.WriteString("# Soft dependencies of the installed modules, from their .modinfo sections.\n")
	for _, m := range sel.Modules {
		// Select has parsed every selected module's records already.
		pre, post, _ := m.softdeps()
		if len(pre) == 0 && len(post) == 0 {
			continue
		}
		fmt.Fprintf(&b, "softdep %s", m.Name)
		if len(pre) > 0 {
			fmt.Fprintf(&b, " pre: %s", strings.Join(pre, " "))
		}
		if len(post) > 0 {
			fmt.Fprintf(&b, " post: %s", strings.Join(post, " "))
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}
