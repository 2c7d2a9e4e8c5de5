package fat32

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"metropolis.dev/osbase/structfs"
)

// WriteFS writes a FAT32 filesystem holding tree to w, which is the region
// of opts.BlockCount sectors of opts.BlockSize bytes the filesystem fills,
// such as a partition (see io.NewOffsetWriter). It fails before writing
// anything if the tree holds what FAT cannot store or does not fit.
func WriteFS(w io.WriterAt, tree *structfs.Tree, opts Options) error {
	o, p, err := prepare(tree, opts)
	if err != nil {
		return fmt.Errorf("fat32: %w", err)
	}
	l, err := chooseLayout(p, o)
	if err != nil {
		return fmt.Errorf("fat32: %w", err)
	}
	p.allocate(l.clusterSize())
	fw := &fsWriter{w: w, l: l, o: o, p: p, buf: bufio.NewWriterSize(nil, 1<<20)}
	if err := fw.write(); err != nil {
		return fmt.Errorf("fat32: %w", err)
	}
	return nil
}

// SizeFS returns the smallest size in bytes of a filesystem holding tree,
// for opts.BlockSize and opts.SectorsPerCluster; opts.BlockCount is
// ignored. WriteFS accepts that size, as BlockCount = size / BlockSize,
// and any larger one up to FAT32's limits.
func SizeFS(tree *structfs.Tree, opts Options) (int64, error) {
	o, p, err := prepare(tree, opts)
	if err != nil {
		return 0, fmt.Errorf("fat32: %w", err)
	}
	size, err := minSize(p, o)
	if err != nil {
		return 0, fmt.Errorf("fat32: the tree does not fit into any FAT32 filesystem: %w", err)
	}
	return size, nil
}

// prepare checks the options and the tree.
func prepare(tree *structfs.Tree, opts Options) (*options, *plan, error) {
	o, err := opts.check()
	if err != nil {
		return nil, nil, err
	}
	p, err := newPlan(tree, o.label != "")
	if err != nil {
		return nil, nil, err
	}
	return o, p, nil
}

// fsWriter writes a planned and allocated tree.
type fsWriter struct {
	w io.WriterAt
	l layout
	o *options
	p *plan
	// buf is reused for the contents of every file.
	buf *bufio.Writer
}

func (fw *fsWriter) write() error {
	if err := fw.writeReserved(); err != nil {
		return fmt.Errorf("writing the reserved sectors: %w", err)
	}
	if err := fw.writeFATs(); err != nil {
		return fmt.Errorf("writing the FATs: %w", err)
	}
	for _, n := range fw.p.nodes {
		if err := fw.writeNode(n); err != nil {
			return fmt.Errorf("writing %s: %w", n.path, err)
		}
	}
	return nil
}

// writeReserved writes all reserved sectors: the boot sector and FSInfo,
// their backups, and zeros in between.
func (fw *fsWriter) writeReserved() error {
	ss := fw.l.sectorSize
	b := make([]byte, fw.l.reservedSectors*ss)
	boot, info := bootSector(fw.l, fw.o), fsInfo(fw.l, fw.p.clusters(fw.l.clusterSize()))
	for _, start := range []int64{0, backupBootSector} {
		copy(b[start*ss:], boot)
		copy(b[(start+fsInfoSector)*ss:], info)
	}
	_, err := fw.w.WriteAt(b, 0)
	return err
}

// writeFATs writes both FATs whole, in chunks. Every node's clusters are
// one run, so each cluster in use points to the next one, except the last
// of a run, which ends the chain.
func (fw *fsWriter) writeFATs() error {
	var ends []uint32 // The last cluster of every run, ascending.
	for _, n := range fw.p.nodes {
		if n.clusters > 0 {
			ends = append(ends, n.first+uint32(n.clusters)-1)
		}
	}
	entries := fw.l.fatSectors * fw.l.sectorSize / fatEntry
	chunk := make([]byte, min(entries*fatEntry, 1<<16))
	for start := int64(0); start < entries; start += int64(len(chunk)) / fatEntry {
		n := min(int64(len(chunk))/fatEntry, entries-start)
		for i := range n {
			c := uint32(start + i)
			var v uint32
			switch {
			case c == 0:
				v = 0x0fffff00 | mediaFixed
			case c == 1:
				v = endOfChain
			case len(ends) > 0 && c == ends[0]:
				v = endOfChain
				ends = ends[1:]
			case len(ends) > 0:
				v = c + 1
			}
			binary.LittleEndian.PutUint32(chunk[i*fatEntry:], v)
		}
		for f := range numFATs {
			if _, err := fw.w.WriteAt(chunk[:n*fatEntry], fw.l.fatOffset(f)+start*fatEntry); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeNode writes the clusters of n, padded with zeros to their end.
func (fw *fsWriter) writeNode(n *node) error {
	if n.clusters == 0 {
		return nil
	}
	off := fw.l.clusterOffset(n.first)
	length := n.clusters * fw.l.clusterSize()
	if n.blob == nil {
		_, err := fw.w.WriteAt(fw.dirContent(n, length), off)
		return err
	}
	fw.buf.Reset(io.NewOffsetWriter(fw.w, off))
	if err := structfs.CopyBlob(fw.buf, n.blob); err != nil {
		return err
	}
	if _, err := fw.buf.Write(make([]byte, length-n.blob.Size())); err != nil {
		return err
	}
	return fw.buf.Flush()
}

// dirContent returns the clusters of directory n, length bytes: its
// entries, then zeros, which end the directory.
func (fw *fsWriter) dirContent(n *node, length int64) []byte {
	b := make([]byte, length)
	ts := fw.o.time
	pos := 0
	next := func() []byte {
		e := b[pos : pos+dirEntrySize]
		pos += dirEntrySize
		return e
	}
	if n == fw.p.root {
		if fw.p.hasLabel {
			putShortEntry(next(), shortName([]byte(fw.o.label)), attrVolumeID, 0, 0, ts)
		}
	} else {
		// ".." of a directory in the root points to cluster 0, whatever
		// the root directory's cluster is.
		parent := n.parent.first
		if n.parent == fw.p.root {
			parent = 0
		}
		putShortEntry(next(), makeShortName(".", ""), attrDir, n.first, 0, ts)
		putShortEntry(next(), makeShortName("..", ""), attrDir, parent, 0, ts)
	}
	for _, c := range n.children {
		if c.long {
			pos += putLongEntries(b[pos:], c.name, c.short.checksum())
		}
		attr, size := byte(attrDir), uint32(0)
		if c.blob != nil {
			attr, size = attrArchive, uint32(c.blob.Size())
		}
		putShortEntry(next(), c.short, attr, c.first, size, ts)
	}
	return b
}
