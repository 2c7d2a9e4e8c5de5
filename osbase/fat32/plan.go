package fat32

import (
	"fmt"
	"math"
	"strings"

	"metropolis.dev/osbase/structfs"
)

// node is a file or directory of the filesystem to write.
type node struct {
	path string
	// name is the long name, empty for the root directory.
	name  string
	short shortName
	// long is set if the name needs long name entries.
	long bool
	// blob is a file's content, nil for directories.
	blob     structfs.Blob
	parent   *node
	children []*node
	// first is the first cluster and clusters their number, set by
	// allocate. Empty files have none.
	first    uint32
	clusters int64
}

// plan is a tree ready to be laid out: names checked, short names
// assigned, directory sizes known.
type plan struct {
	root *node
	// nodes are all nodes in walk order, which is also allocation order.
	nodes []*node
	// hasLabel is set if the root directory has a volume label entry.
	hasLabel bool
}

// newPlan checks tree for what FAT cannot store and prepares it.
func newPlan(tree *structfs.Tree, hasLabel bool) (*plan, error) {
	p := &plan{hasLabel: hasLabel}
	byPath := make(map[string]*node)
	err := tree.Walk(func(e structfs.Entry) error {
		n := &node{path: e.Path}
		switch e.Type {
		case structfs.TypeDir:
		case structfs.TypeFile:
			if size := e.Blob.Size(); size > math.MaxUint32 {
				return fmt.Errorf("%s: %d bytes, more than FAT's limit of 4 GiB - 1", e.Path, size)
			}
			n.blob = e.Blob
		default:
			return fmt.Errorf("%s: a %v cannot be stored in FAT, which holds only regular files and directories", e.Path, e.Type)
		}
		if e.Path == "/" {
			p.root = n
		} else {
			i := strings.LastIndexByte(e.Path, '/')
			n.name = e.Path[i+1:]
			if err := checkLongName(n.name); err != nil {
				return fmt.Errorf("%s: %w", e.Path, err)
			}
			dir := e.Path[:i]
			if dir == "" {
				dir = "/"
			}
			n.parent = byPath[dir]
			n.parent.children = append(n.parent.children, n)
		}
		byPath[e.Path] = n
		p.nodes = append(p.nodes, n)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, n := range p.nodes {
		if n.blob != nil {
			continue
		}
		if len(n.children) > maxDirEntries {
			return nil, fmt.Errorf("%s: the directory has %d entries, more than FAT's %d", n.path, len(n.children), maxDirEntries)
		}
		if err := checkCase(n.children); err != nil {
			return nil, err
		}
		assignShortNames(n.children)
		if entries := p.dirEntries(n); entries > maxDirEntries {
			return nil, fmt.Errorf("%s: the directory needs %d entries, more than FAT's %d", n.path, entries, maxDirEntries)
		}
	}
	return p, nil
}

// checkCase fails if two of children have names that differ only in case,
// which FAT takes for the same name.
func checkCase(children []*node) error {
	seen := make(map[string]string)
	for _, c := range children {
		folded := strings.ToUpper(c.name)
		if other, ok := seen[folded]; ok {
			return fmt.Errorf("%s: the name differs from %q only in case, and FAT ignores case", c.path, other)
		}
		seen[folded] = c.name
	}
	return nil
}

// dirEntries is the number of directory entries the directory n holds.
func (p *plan) dirEntries(n *node) int {
	entries := 2 // "." and ".."
	if n == p.root {
		entries = 0
		if p.hasLabel {
			entries = 1
		}
	}
	for _, c := range n.children {
		entries++
		if c.long {
			entries += longEntries(c.name)
		}
	}
	return entries
}

// size is the number of bytes of n's content: the file's, or the
// directory's entries.
func (p *plan) size(n *node) int64 {
	if n.blob != nil {
		return n.blob.Size()
	}
	return int64(p.dirEntries(n)) * dirEntrySize
}

// nodeClusters is how many clusters of clusterSize bytes n needs. Every
// directory has at least one, even the empty root.
func (p *plan) nodeClusters(n *node, clusterSize int64) int64 {
	c := (p.size(n) + clusterSize - 1) / clusterSize
	if n.blob == nil {
		c = max(c, 1)
	}
	return c
}

// clusters is how many clusters of clusterSize bytes the tree needs.
func (p *plan) clusters(clusterSize int64) int64 {
	var total int64
	for _, n := range p.nodes {
		total += p.nodeClusters(n, clusterSize)
	}
	return total
}

// allocate gives every node its clusters, one run each, in walk order
// from the first data cluster on, so the root directory is at cluster 2.
func (p *plan) allocate(clusterSize int64) {
	next := uint32(firstCluster)
	for _, n := range p.nodes {
		n.clusters = p.nodeClusters(n, clusterSize)
		if n.clusters > 0 {
			n.first = next
			next += uint32(n.clusters)
		}
	}
}
