package erofs

import (
	"fmt"
	"io"
	"time"

	goerofs "github.com/erofs/go-erofs"

	"metropolis.dev/osbase/structfs"
)

// Options tune an image. The zero value is valid.
type Options struct {
	// ModTime is the build time in the superblock and the modification
	// time of every inode, in seconds since the Unix epoch, like
	// SOURCE_DATE_EPOCH. Zero is the epoch itself.
	ModTime uint32
}

// Write writes tree to w as an EROFS image. The image starts at offset 0 of
// w: Write seeks back there at the end to fill in the superblock (use
// io.NewOffsetWriter to write it into part of a larger file). File contents
// are staged in an unlinked temporary file until then.
func Write(w io.WriteSeeker, tree *structfs.Tree, opts Options) error {
	mtime := time.Unix(int64(opts.ModTime), 0)
	iw := goerofs.Create(w, goerofs.WithBuildTime(uint64(opts.ModTime), 0))
	err := tree.Walk(func(e structfs.Entry) error {
		if err := add(iw, e, mtime); err != nil {
			return fmt.Errorf("erofs: adding %s: %w", e.Path, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := iw.Close(); err != nil {
		return fmt.Errorf("erofs: writing image: %w", err)
	}
	return nil
}

// add adds e to iw. Walk visits parents first, so iw never has to invent
// a parent directory with its own default metadata.
func add(iw *goerofs.Writer, e structfs.Entry, mtime time.Time) error {
	var err error
	switch e.Type {
	case structfs.TypeDir:
		err = iw.Mkdir(e.Path, e.Mode.Perm())
	case structfs.TypeFile:
		err = addFile(iw, e)
	case structfs.TypeSymlink:
		err = iw.Symlink(e.Target, e.Path)
	case structfs.TypeCharDevice, structfs.TypeBlockDevice:
		err = iw.Mknod(e.Path, uint16(e.UnixMode()), encodeDev(e.Major, e.Minor))
	default:
		err = fmt.Errorf("unsupported node type %v", e.Type)
	}
	if err != nil {
		return err
	}
	// Mkdir and Create take no setuid, setgid or sticky bits; Chmod does.
	if e.Type != structfs.TypeSymlink {
		if err := iw.Chmod(e.Path, e.Mode); err != nil {
			return err
		}
	}
	if err := iw.Chown(e.Path, int(e.UID), int(e.GID)); err != nil {
		return err
	}
	return iw.Chtimes(e.Path, mtime, mtime)
}

// addFile adds a regular file with its content.
func addFile(iw *goerofs.Writer, e structfs.Entry) error {
	f, err := iw.Create(e.Path)
	if err != nil {
		return err
	}
	if err := structfs.CopyBlob(f, e.Blob); err != nil {
		return err
	}
	return f.Close()
}

// encodeDev returns a device number as EROFS stores it, in the kernel's
// 32-bit encoding (new_encode_dev): the low 8 bits of the minor, then 12
// bits of major, then the remaining 12 bits of the minor.
func encodeDev(major, minor uint32) uint32 {
	return minor&0xff | major<<8 | (minor&^0xff)<<12
}
