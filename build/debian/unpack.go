package debian

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Unpack extracts the files of the .deb package at debPath into dir, as
// `dpkg-deb -x` would, and creates dir if needed. It extracts regular files,
// directories, symbolic links and hard links; any other kind of file, and
// sparse files, are errors. Files keep their permission bits, but not setuid, setgid and sticky
// bits, owners or times: the image writers that consume unpacked files set
// those themselves. Directories are created with mode 0755.
//
// Member names that are absolute or contain a ".." component are refused,
// and so is anything that would be written outside dir through a symbolic
// link the package itself created. Existing files are never overwritten,
// so unpacking two packages into one directory fails if they conflict.
func Unpack(debPath, dir string) error {
	f, err := os.Open(debPath)
	if err != nil {
		return fmt.Errorf("unpacking: %w", err)
	}
	defer f.Close()
	// The decompressors read in small pieces; without a buffer each
	// would be a system call.
	if err := unpack(bufio.NewReaderSize(f, 1<<20), dir); err != nil {
		return fmt.Errorf("unpacking %s: %w", debPath, err)
	}
	return nil
}

func unpack(r io.Reader, dir string) error {
	ar := newArReader(r)
	name, _, err := ar.Next()
	if err != nil {
		return err
	}
	// deb(5): the format version comes first; 2.x is the only one in use.
	if name != "debian-binary" {
		return fmt.Errorf("not a Debian package: first member is %q, want debian-binary", name)
	}
	version, err := io.ReadAll(io.LimitReader(ar, 16))
	if err != nil {
		return fmt.Errorf("reading format version: %w", err)
	}
	if !strings.HasPrefix(string(version), "2.") {
		return fmt.Errorf("unsupported package format version %q", version)
	}

	found := false
	for {
		name, _, err := ar.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(name, "data.tar"):
			if found {
				return errors.New("more than one data member")
			}
			found = true
			if err := extractData(name, ar, dir); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		case strings.HasPrefix(name, "control.tar"), strings.HasPrefix(name, "_"):
			// Maintainer scripts and metadata are not needed to use
			// the files; deb(5) reserves names starting with an
			// underscore for optional additions such as signatures.
		default:
			return fmt.Errorf("unexpected package member %q", name)
		}
	}
	if !found {
		return errors.New("package has no data member")
	}
	return nil
}

// decompressor returns a reader for the data member called name, whose
// suffix names its compression.
func decompressor(name string, r io.Reader) (io.Reader, func(), error) {
	switch name {
	case "data.tar":
		return r, func() {}, nil
	case "data.tar.gz":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return zr, func() { zr.Close() }, nil
	case "data.tar.xz":
		zr, err := xz.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return zr, func() {}, nil
	case "data.tar.zst":
		zr, err := zstd.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return zr, zr.Close, nil
	}
	return nil, nil, fmt.Errorf("unsupported compression of %s", name)
}

func extractData(name string, r io.Reader, dir string) error {
	zr, closeZR, err := decompressor(name, r)
	if err != nil {
		return err
	}
	defer closeZR()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// os.Root refuses every operation whose path would resolve outside
	// dir, including through symbolic links created by earlier members.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()

	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := extractEntry(root, hdr, tr); err != nil {
			return fmt.Errorf("%q: %w", hdr.Name, err)
		}
	}
}

func extractEntry(root *os.Root, hdr *tar.Header, r io.Reader) error {
	name, err := memberPath(hdr.Name)
	if err != nil {
		return err
	}
	// A sparse file's header states its expanded size, which is not
	// bounded by the archive's size; dpkg-deb never writes sparse files.
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return errors.New("sparse files are not supported")
		}
	}
	if name == "." {
		if hdr.Typeflag != tar.TypeDir {
			return errors.New(`only a directory may be called "."`)
		}
		return nil
	}
	if hdr.Typeflag != tar.TypeDir {
		if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
			return err
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return root.MkdirAll(name, 0o755)
	case tar.TypeReg:
		perm := os.FileMode(hdr.Mode).Perm()
		f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return err
		}
		// The umask may have cleared bits the package sets.
		if err := f.Chmod(perm); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	case tar.TypeSymlink:
		// The target is stored as is, even if absolute: it is only
		// text until something follows it, and following it is
		// confined to dir while unpacking.
		if hdr.Linkname == "" || strings.ContainsRune(hdr.Linkname, 0) {
			return fmt.Errorf("bad symbolic link target %q", hdr.Linkname)
		}
		return root.Symlink(hdr.Linkname, name)
	case tar.TypeLink:
		target, err := memberPath(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hard link target: %w", err)
		}
		return root.Link(target, name)
	}
	return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
}

// memberPath turns a tar member name such as "./usr/bin/foo" into a path
// relative to the target directory, refusing names that could point outside
// it.
func memberPath(name string) (string, error) {
	if name == "" || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("bad member name %q", name)
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("absolute member name %q refused", name)
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("member name %q with .. refused", name)
		}
	}
	return path.Clean(name), nil
}
