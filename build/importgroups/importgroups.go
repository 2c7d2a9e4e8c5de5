// Package importgroups checks the project's import layout: imports stand in
// groups separated by a blank line, first the standard library, then
// third-party modules, then this module (metropolis.dev). gofmt sorts within
// a group but knows nothing of groups, so this is checked separately.
//
// A reader scanning a file's imports should see at a glance what it depends on
// from outside the project, which is why a group may not mix kinds and each
// kind gets a single group.
package importgroups

import (
	"fmt"
	"go/ast"
	"go/token"
	"strconv"
	"strings"
)

// ModulePath is the path prefix of this repository's own packages.
const ModulePath = "metropolis.dev"

// Kind classifies an import path.
type Kind int

const (
	Standard Kind = iota
	ThirdParty
	Local
)

func (k Kind) String() string {
	switch k {
	case Standard:
		return "standard library"
	case ThirdParty:
		return "third-party"
	default:
		return ModulePath
	}
}

// KindOf tells which group an import path belongs to.
func KindOf(path string) Kind {
	if path == ModulePath || strings.HasPrefix(path, ModulePath+"/") {
		return Local
	}
	first, _, _ := strings.Cut(path, "/")
	// Standard library paths never have a dot in their first element; every
	// module path does.
	if strings.Contains(first, ".") {
		return ThirdParty
	}
	return Standard
}

// Problem is one violation, at the position of the offending import.
type Problem struct {
	Pos     token.Position
	Message string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s: %s", p.Pos, p.Message)
}

type group struct {
	kind  Kind
	first *ast.ImportSpec
}

// Check returns the import layout problems of a parsed file. Generated files
// and cgo's pseudo-import "C" are exempt.
func Check(fset *token.FileSet, f *ast.File) []Problem {
	if ast.IsGenerated(f) {
		return nil
	}
	var problems []Problem
	report := func(spec *ast.ImportSpec, format string, args ...any) {
		problems = append(problems, Problem{Pos: fset.Position(spec.Pos()), Message: fmt.Sprintf(format, args...)})
	}

	var groups []group
	prevEndLine := -1
	for _, spec := range f.Imports {
		path, err := strconv.Unquote(spec.Path.Value)
		if err != nil || path == "C" {
			continue
		}
		kind := KindOf(path)
		startLine := fset.Position(spec.Pos()).Line
		if spec.Doc != nil {
			startLine = fset.Position(spec.Doc.Pos()).Line
		}
		newGroup := len(groups) == 0 || startLine > prevEndLine+1
		prevEndLine = fset.Position(spec.End()).Line

		if !newGroup {
			if g := groups[len(groups)-1]; g.kind != kind {
				report(spec, "%s import %q in a group of %s imports; separate the groups with a blank line", kind, path, g.kind)
			}
			continue
		}
		if msg := misplacedGroup(groups, kind, path); msg != "" {
			report(spec, "%s", msg)
		}
		groups = append(groups, group{kind: kind, first: spec})
	}
	return problems
}

// misplacedGroup explains why a new group of kind, starting with path, may
// not follow the groups before it, or returns "" when it may.
func misplacedGroup(before []group, kind Kind, path string) string {
	for _, g := range before {
		if g.kind == kind {
			return fmt.Sprintf("second group of %s imports; merge it with the group starting at %q", kind, importPath(g.first))
		}
		if g.kind > kind {
			return fmt.Sprintf("%s import %q after the %s group; order groups standard library, third-party, %s", kind, path, g.kind, ModulePath)
		}
	}
	return ""
}

func importPath(spec *ast.ImportSpec) string {
	p, _ := strconv.Unquote(spec.Path.Value)
	return p
}
