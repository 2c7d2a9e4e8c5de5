package debian

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"strconv"
	"testing"
)

// entry is one member of a test package's data archive.
type entry struct {
	name     string
	typ      byte
	mode     int64
	body     string
	linkname string
}

func file(name, body string) entry {
	return entry{name: name, typ: tar.TypeReg, mode: 0o644, body: body}
}

func dir(name string) entry {
	return entry{name: name, typ: tar.TypeDir, mode: 0o755}
}

func symlink(name, target string) entry {
	return entry{name: name, typ: tar.TypeSymlink, mode: 0o777, linkname: target}
}

func hardlink(name, target string) entry {
	return entry{name: name, typ: tar.TypeLink, mode: 0o644, linkname: target}
}

// tarball returns an uncompressed tar archive of the entries.
func tarball(t testing.TB, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.linkname, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)[:hdr.Size]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// member is one member of a test ar archive.
type member struct {
	name string
	body []byte
}

// arArchive writes an ar archive the way dpkg-deb does.
func arArchive(members ...member) []byte {
	var buf bytes.Buffer
	buf.WriteString(arMagic)
	for _, m := range members {
		fmt.Fprintf(&buf, "%-16s%-12d%-6d%-6d%-8o%-10d%s", m.name, 0, 0, 0, 0o100644, len(m.body), arFileMagic)
		buf.Write(m.body)
		if len(m.body)%2 == 1 {
			buf.WriteByte('\n')
		}
	}
	return buf.Bytes()
}

// testDeb returns a package whose data member is an uncompressed tar of
// the entries, which lets fuzzing mutate tar headers directly.
func testDeb(t testing.TB, entries ...entry) []byte {
	t.Helper()
	return arArchive(
		member{"debian-binary", []byte("2.0\n")},
		member{"control.tar.gz", gzipped(t, tarball(t, []entry{file("./control", "Package: test\n")}))},
		member{"data.tar", tarball(t, entries)},
	)
}

// sparseTar returns a tar archive holding one GNU sparse file (PAX format
// 0.1) that claims to expand to a terabyte from one byte of data.
// archive/tar cannot write sparse files, so the blocks are built by hand.
func sparseTar() []byte {
	header := func(name string, typ byte, size int) []byte {
		b := make([]byte, 512)
		copy(b[0:], name)
		copy(b[100:], "0000644\x00")
		copy(b[124:], fmt.Sprintf("%011o\x00", size))
		b[156] = typ
		copy(b[257:], "ustar\x0000")
		// The checksum is computed with its own field as spaces.
		copy(b[148:156], "        ")
		sum := 0
		for _, c := range b {
			sum += int(c)
		}
		copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
		return b
	}
	// A PAX record is "LENGTH KEY=VALUE\n", LENGTH counting itself.
	record := func(k, v string) string {
		s := " " + k + "=" + v + "\n"
		n := len(s)
		for len(strconv.Itoa(n))+len(s) != n {
			n = len(strconv.Itoa(n)) + len(s)
		}
		return strconv.Itoa(n) + s
	}
	pax := record("GNU.sparse.major", "0") + record("GNU.sparse.minor", "1") +
		record("GNU.sparse.numblocks", "1") + record("GNU.sparse.map", "0,1") +
		record("GNU.sparse.size", "1000000000000")
	var b bytes.Buffer
	b.Write(header("./PaxHeaders/huge", tar.TypeXHeader, len(pax)))
	b.WriteString(pax)
	b.Write(make([]byte, 512-len(pax)%512))
	b.Write(header("./huge", tar.TypeReg, 1))
	b.WriteByte('x')
	b.Write(make([]byte, 511+1024))
	return b.Bytes()
}
