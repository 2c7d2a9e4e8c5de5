package cpio

import (
	"bufio"
	"fmt"
	"io"
	"math"

	"metropolis.dev/osbase/structfs"
)

// Options tune an archive. The zero value is valid.
type Options struct {
	// ModTime is the modification time of every entry, in seconds since
	// the Unix epoch, like SOURCE_DATE_EPOCH. Zero is the epoch itself.
	ModTime uint32
}

const (
	magic      = "070701"
	headerSize = len(magic) + 13*8
	trailer    = "TRAILER!!!"
)

// Write writes tree to w as an uncompressed newc archive.
func Write(w io.Writer, tree *structfs.Tree, opts Options) error {
	aw := &archiveWriter{w: bufio.NewWriterSize(w, 1<<16), opts: opts}
	err := tree.Walk(func(e structfs.Entry) error {
		if err := aw.entry(e); err != nil {
			return fmt.Errorf("cpio: writing %s: %w", e.Path, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := aw.header(header{name: trailer, nlink: 1}); err != nil {
		return fmt.Errorf("cpio: writing trailer: %w", err)
	}
	if err := aw.w.Flush(); err != nil {
		return fmt.Errorf("cpio: %w", err)
	}
	return nil
}

// header holds the fields of one newc header that are not always zero.
type header struct {
	name                 string
	ino, mode, uid, gid  uint32
	nlink, mtime, size   uint32
	rdevMajor, rdevMinor uint32
}

type archiveWriter struct {
	w    *bufio.Writer
	opts Options
	// ino is the inode number of the last entry written.
	ino uint32
}

// entry writes the header and content of e.
func (aw *archiveWriter) entry(e structfs.Entry) error {
	aw.ino++
	h := header{
		name:  e.Path[1:],
		ino:   aw.ino,
		mode:  e.UnixMode(),
		uid:   e.UID,
		gid:   e.GID,
		nlink: e.Links,
		mtime: aw.opts.ModTime,
	}
	if h.name == "" {
		h.name = "."
	}
	switch e.Type {
	case structfs.TypeFile:
		if e.Blob.Size() > math.MaxUint32 {
			return fmt.Errorf("%d bytes are more than newc's limit of 4 GiB - 1", e.Blob.Size())
		}
		h.size = uint32(e.Blob.Size())
	case structfs.TypeSymlink:
		h.size = uint32(len(e.Target))
	case structfs.TypeCharDevice, structfs.TypeBlockDevice:
		h.rdevMajor, h.rdevMinor = e.Major, e.Minor
	}
	if err := aw.header(h); err != nil {
		return err
	}
	switch e.Type {
	case structfs.TypeFile:
		if err := structfs.CopyBlob(aw.w, e.Blob); err != nil {
			return err
		}
	case structfs.TypeSymlink:
		if _, err := aw.w.WriteString(e.Target); err != nil {
			return err
		}
	}
	return aw.pad(int(h.size))
}

// header writes h, the entry's name and the padding after it.
func (aw *archiveWriter) header(h header) error {
	var buf [headerSize]byte
	copy(buf[:], magic)
	fields := []uint32{
		h.ino, h.mode, h.uid, h.gid, h.nlink, h.mtime, h.size,
		0, 0, // major and minor of the device holding the file
		h.rdevMajor, h.rdevMinor,
		uint32(len(h.name) + 1), // name size including its NUL
		0,                       // checksum, unused in newc
	}
	for i, f := range fields {
		putHex(buf[len(magic)+8*i:], f)
	}
	aw.w.Write(buf[:])
	aw.w.WriteString(h.name)
	aw.w.WriteByte(0)
	return aw.pad(headerSize + len(h.name) + 1)
}

// pad writes the zeros that align n bytes to the next 4-byte boundary.
// Errors of the buffered writer stick, so this is where they surface.
func (aw *archiveWriter) pad(n int) error {
	var zeros [3]byte
	_, err := aw.w.Write(zeros[:(4-n%4)%4])
	return err
}

// putHex writes v as 8 upper-case hexadecimal digits to b.
func putHex(b []byte, v uint32) {
	const digits = "0123456789ABCDEF"
	for i := 7; i >= 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
}
