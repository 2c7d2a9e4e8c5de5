package elfdeps

import (
	"fmt"
	"os"
	"path"
	"path/filepath"

	"metropolis.dev/osbase/structfs"
)

// PlaceFiles puts files, read from below root, into t at the same paths:
// symbolic links as links, regular files with the permissions they have
// below root. Callers placing several closures pass each file once.
func PlaceFiles(t *structfs.Tree, root string, files []File) error {
	for _, f := range files {
		var n structfs.Node
		if f.Target != "" {
			n = structfs.Symlink(f.Target)
		} else {
			host := filepath.Join(root, filepath.FromSlash(f.Path))
			fi, err := os.Lstat(host)
			if err != nil {
				return err
			}
			blob, err := structfs.HostFile(host)
			if err != nil {
				return err
			}
			n = structfs.File(fi.Mode()&structfs.PermMask, blob)
		}
		if err := t.Place(path.Join("/", f.Path), n); err != nil {
			return fmt.Errorf("placing %s: %w", f.Path, err)
		}
	}
	return nil
}
