package structfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// Blob is the content of a regular file. Size is fixed when the Blob is
// made; Open may be called any number of times, each time reading the
// content from the start.
type Blob interface {
	Size() int64
	Open() (io.ReadCloser, error)
}

// Bytes returns a Blob holding b. The caller must not modify b afterwards.
func Bytes(b []byte) Blob {
	return bytesBlob(b)
}

type bytesBlob []byte

func (b bytesBlob) Size() int64 { return int64(len(b)) }

func (b bytesBlob) Open() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(b)), nil
}

// HostFile returns a Blob with the content of the regular file at path on
// the host. Its size is taken now; its content is only read when the Blob is
// opened. If the file changes size in between, CopyBlob fails.
func HostFile(path string) (Blob, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("structfs: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("structfs: host file %s is a %v, not a regular file", path, fi.Mode().Type())
	}
	return hostBlob{path: path, size: fi.Size()}, nil
}

type hostBlob struct {
	path string
	size int64
}

func (b hostBlob) Size() int64 { return b.size }

func (b hostBlob) Open() (io.ReadCloser, error) {
	return os.Open(b.path)
}

// CopyBlob writes the content of b to w. It fails if the content is not
// exactly b.Size() bytes long, so writers that put the size in a header
// before the content never produce an inconsistent image.
func CopyBlob(w io.Writer, b Blob) error {
	r, err := b.Open()
	if err != nil {
		return err
	}
	defer r.Close()
	n, err := io.CopyN(w, r, b.Size())
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("content ended after %d of %d bytes", n, b.Size())
	}
	if err != nil {
		return err
	}
	var extra [1]byte
	switch _, err := io.ReadFull(r, extra[:]); {
	case err == nil:
		return fmt.Errorf("content is longer than its size of %d bytes", b.Size())
	case errors.Is(err, io.EOF):
		return nil
	default:
		return err
	}
}
