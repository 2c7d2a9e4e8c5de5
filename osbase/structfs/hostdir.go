package structfs

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// PlaceHostDir places the host directory src and everything below it at the
// absolute path dst: directories, regular files (read lazily, see HostFile)
// and symbolic links. Permission bits come from the host; every node is
// owned by root, as host ownership depends on who built the input and
// would make images differ between build machines. Other file types fail.
func (t *Tree) PlaceHostDir(dst, src string) error {
	return filepath.WalkDir(src, func(hostPath string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("structfs: reading host directory: %w", err)
		}
		rel, err := filepath.Rel(src, hostPath)
		if err != nil {
			return fmt.Errorf("structfs: host %s: %w", hostPath, err)
		}
		n, err := hostNode(hostPath, d)
		if err != nil {
			return fmt.Errorf("structfs: host %s: %w", hostPath, err)
		}
		p := dst
		if rel != "." {
			p = childPath(dst, filepath.ToSlash(rel))
		}
		return t.Place(p, n)
	})
}

// hostNode returns the node for the host file at p.
func hostNode(p string, d fs.DirEntry) (Node, error) {
	fi, err := d.Info()
	if err != nil {
		return Node{}, err
	}
	mode := fi.Mode() & PermMask
	switch fi.Mode().Type() {
	case fs.ModeDir:
		return Dir(mode), nil
	case 0:
		return File(mode, hostBlob{path: p, size: fi.Size()}), nil
	case fs.ModeSymlink:
		target, err := os.Readlink(p)
		if err != nil {
			return Node{}, err
		}
		return Symlink(target), nil
	}
	return Node{}, fmt.Errorf("unsupported file type %v", fi.Mode().Type())
}
