package kernel

import (
	"fmt"
	"slices"
	"strings"

	"metropolis.dev/osbase/kmod"
)

// A Selection is a set of modules to install, closed under dependencies.
type Selection struct {
	// Modules are the modules to install, sorted by name.
	Modules []*Module
	// Builtin lists the requested names that are built into the kernel
	// and so need no file.
	Builtin []string
	// Unresolved lists soft dependencies that name nothing in the
	// package, as "module: name". modprobe skips those too; they are
	// reported so that a kernel update that renames a module is noticed.
	Unresolved []string
}

// Size returns the total size of the selected module files in bytes.
func (s *Selection) Size() int64 {
	var n int64
	for _, m := range s.Modules {
		n += m.Size
	}
	return n
}

// Select returns the named modules together with everything loading them
// needs: the modules they depend on and the modules their soft
// dependencies name, recursively. A soft dependency may name a module or
// an alias; an alias brings in every module that has it, for example both
// the generic and the CPU-specific crc32c. Naming a module that does not
// exist is an error, naming a built-in one is not.
func (p *Package) Select(names []string) (*Selection, error) {
	sel := &Selection{}
	chosen := make(map[string]bool)
	var queue []string
	for _, n := range names {
		switch {
		case p.Module(n) != nil:
			queue = append(queue, normalizeName(n))
		case p.IsBuiltin(n):
			sel.Builtin = append(sel.Builtin, normalizeName(n))
		default:
			return nil, fmt.Errorf("%s: %w", n, ErrUnknownModule)
		}
	}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if chosen[name] {
			continue
		}
		chosen[name] = true
		m := p.modules[name]
		for _, d := range m.Depends {
			if p.modules[d] == nil {
				return nil, fmt.Errorf("module %s depends on %s, which the package does not have", name, d)
			}
			queue = append(queue, d)
		}
		pre, post, err := m.softdeps()
		if err != nil {
			return nil, fmt.Errorf("module %s: %w", name, err)
		}
		for _, sd := range append(pre, post...) {
			mods, err := p.resolveSoftdep(sd)
			if err != nil {
				return nil, fmt.Errorf("module %s: %w", name, err)
			}
			if mods == nil && !p.IsBuiltin(sd) {
				sel.Unresolved = append(sel.Unresolved, name+": "+sd)
			}
			queue = append(queue, mods...)
		}
	}
	for name := range chosen {
		sel.Modules = append(sel.Modules, p.modules[name])
	}
	slices.SortFunc(sel.Modules, func(a, b *Module) int { return strings.Compare(a.Name, b.Name) })
	slices.Sort(sel.Builtin)
	slices.Sort(sel.Unresolved)
	sel.Unresolved = slices.Compact(sel.Unresolved)
	return sel, nil
}

// softdeps parses the module's soft dependency records, which have the
// syntax of modprobe.d's softdep lines after the module name:
// "pre: a b post: c".
func (m *Module) softdeps() (pre, post []string, err error) {
	for _, v := range m.Softdeps {
		var list *[]string
		for _, w := range strings.Fields(v) {
			switch w {
			case "pre:":
				list = &pre
			case "post:":
				list = &post
			default:
				if list == nil {
					return nil, nil, fmt.Errorf("soft dependency %q: %q comes before the first pre: or post: marker", v, w)
				}
				*list = append(*list, w)
			}
		}
	}
	return pre, post, nil
}

// resolveSoftdep returns the names of the loadable modules a soft
// dependency names: the module of that name, or else every module with a
// matching alias.
func (p *Package) resolveSoftdep(name string) ([]string, error) {
	if m := p.Module(name); m != nil {
		return []string{m.Name}, nil
	}
	var mods []string
	for _, m := range p.modules {
		for _, a := range m.Aliases {
			pat, err := kmod.CompilePattern(a)
			if err != nil {
				return nil, fmt.Errorf("alias %q of %s: %w", a, m.Name, err)
			}
			if pat.Match(name) {
				mods = append(mods, m.Name)
				break
			}
		}
	}
	slices.Sort(mods)
	return mods, nil
}
