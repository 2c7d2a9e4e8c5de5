package structfs

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Errors returned by Place, to be checked with errors.Is.
var (
	ErrInvalidPath = errors.New("invalid path")
	ErrInvalidNode = errors.New("invalid node")
	ErrExist       = errors.New("already exists")
	ErrNotDir      = errors.New("not a directory")
)

// ImplicitDirMode is the mode of directories that Place creates as parents.
const ImplicitDirMode = 0o555

// Tree is a filesystem tree in memory. The zero value is an empty tree: a
// root directory with ImplicitDirMode, owned by root. A Tree is not safe for
// concurrent use while it is being modified.
type Tree struct {
	root *entry
}

type entry struct {
	node Node
	// implicit is set on directories that Place created as parents and that
	// were not placed themselves (yet).
	implicit bool
	children map[string]*entry
}

func newEntry(n Node) *entry {
	e := &entry{node: n}
	if n.Type == TypeDir {
		e.children = make(map[string]*entry)
	}
	return e
}

func newImplicitDir() *entry {
	e := newEntry(Dir(ImplicitDirMode))
	e.implicit = true
	return e
}

// Place puts n at the absolute path p, creating missing parent directories.
// Placing "/" sets the metadata of the root directory. It fails, leaving the
// tree unchanged, if p or n is invalid (ErrInvalidPath, ErrInvalidNode), if
// a node was already placed at p, or a non-directory is to replace a
// directory created as a parent (ErrExist), or if a parent of p is not a
// directory (ErrNotDir).
func (t *Tree) Place(p string, n Node) error {
	parts, err := splitPath(p)
	if err != nil {
		return fmt.Errorf("structfs: place %q: %w: %w", p, ErrInvalidPath, err)
	}
	if err := n.validate(); err != nil {
		return fmt.Errorf("structfs: place %q: %w: %w", p, ErrInvalidNode, err)
	}
	if t.root == nil {
		t.root = newImplicitDir()
	}
	if len(parts) == 0 {
		return t.root.adopt(p, n)
	}
	// Parents are created only from the first missing one on, so all
	// further components are missing too and nothing below can fail: an
	// error never leaves new parents behind.
	dir := t.root
	for i, name := range parts[:len(parts)-1] {
		child, ok := dir.children[name]
		switch {
		case !ok:
			child = newImplicitDir()
			dir.children[name] = child
		case child.node.Type != TypeDir:
			parent := "/" + strings.Join(parts[:i+1], "/")
			return fmt.Errorf("structfs: place %q: parent %q is a %v: %w", p, parent, child.node.Type, ErrNotDir)
		}
		dir = child
	}
	name := parts[len(parts)-1]
	if existing, ok := dir.children[name]; ok {
		return existing.adopt(p, n)
	}
	dir.children[name] = newEntry(n)
	return nil
}

// adopt places n at the existing entry e, which is possible only if e is a
// directory created as a parent and n is a directory.
func (e *entry) adopt(p string, n Node) error {
	if !e.implicit {
		return fmt.Errorf("structfs: place %q: %w (a %v was placed there before)", p, ErrExist, e.node.Type)
	}
	if n.Type != TypeDir {
		return fmt.Errorf("structfs: place %q: %w (a directory holding other nodes, cannot become a %v)", p, ErrExist, n.Type)
	}
	e.node = n
	e.implicit = false
	return nil
}

// Entry is a node with its place in the tree, as visited by Walk.
type Entry struct {
	// Path is absolute and clean, "/" for the root directory.
	Path string
	Node
	// Links is the link count a POSIX filesystem reports: 2 plus the number
	// of subdirectories for a directory, 1 for any other node.
	Links uint32
}

// Walk calls fn for every node of the tree, depth first, parents before
// their children and children sorted by name (byte-wise). The order depends
// only on the tree's contents. The first error from fn stops the walk and is
// returned unchanged.
func (t *Tree) Walk(fn func(Entry) error) error {
	root := t.root
	if root == nil {
		root = newImplicitDir()
	}
	return root.walk("/", fn)
}

func (e *entry) walk(p string, fn func(Entry) error) error {
	links := uint32(1)
	if e.node.Type == TypeDir {
		links = 2
		for _, c := range e.children {
			if c.node.Type == TypeDir {
				links++
			}
		}
	}
	if err := fn(Entry{Path: p, Node: e.node, Links: links}); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(e.children)) {
		if err := e.children[name].walk(childPath(p, name), fn); err != nil {
			return err
		}
	}
	return nil
}
