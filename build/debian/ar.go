package debian

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// A .deb file is an ar archive in the common System V/GNU format (see
// deb(5) and ar(5)): the magic "!<arch>\n", then for each member a 60-byte
// text header and the member's bytes, padded to an even length with "\n".
// dpkg writes only short member names, so the GNU and BSD long-name
// extensions are not supported.
const (
	arMagic      = "!<arch>\n"
	arHeaderSize = 60
	arFileMagic  = "`\n"
)

// arReader reads the members of an ar archive in order.
type arReader struct {
	r io.Reader
	// remaining counts the bytes of the current member not yet read.
	remaining int64
	// pad tells whether a padding byte follows the current member.
	pad     bool
	started bool
}

func newArReader(r io.Reader) *arReader {
	return &arReader{r: r}
}

// Next skips the rest of the current member and returns the name and size
// of the next one, whose contents Read then returns. At the end of the
// archive it returns io.EOF.
func (a *arReader) Next() (name string, size int64, err error) {
	if !a.started {
		magic := make([]byte, len(arMagic))
		if _, err := io.ReadFull(a.r, magic); err != nil {
			return "", 0, fmt.Errorf("reading ar magic: %w", noEOF(err))
		}
		if string(magic) != arMagic {
			return "", 0, errors.New("not an ar archive: bad magic")
		}
		a.started = true
	}
	skip := a.remaining
	if a.pad {
		skip++
	}
	if n, err := io.CopyN(io.Discard, a.r, skip); err != nil {
		// The padding of the last member is optional in practice.
		if !(errors.Is(err, io.EOF) && a.pad && n == skip-1) {
			return "", 0, fmt.Errorf("skipping ar member: %w", noEOF(err))
		}
	}
	a.remaining, a.pad = 0, false

	var hdr [arHeaderSize]byte
	if _, err := io.ReadFull(a.r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return "", 0, io.EOF
		}
		return "", 0, fmt.Errorf("reading ar header: %w", noEOF(err))
	}
	// Fields: name 0-16, mtime 16-28, owner 28-34, group 34-40, mode
	// 40-48, size 48-58, magic 58-60. Only name and size matter here.
	if string(hdr[58:60]) != arFileMagic {
		return "", 0, errors.New("bad ar header: missing terminator")
	}
	name = strings.TrimRight(string(hdr[0:16]), " ")
	// GNU ar ends names with a slash so that they may contain spaces.
	name = strings.TrimSuffix(name, "/")
	if name == "" || strings.ContainsAny(name, "/\x00") {
		return "", 0, fmt.Errorf("bad ar member name %q", hdr[0:16])
	}
	sizeText := string(bytes.TrimRight(hdr[48:58], " "))
	size, err = strconv.ParseInt(sizeText, 10, 64)
	if err != nil || size < 0 || strings.HasPrefix(sizeText, "+") {
		return "", 0, fmt.Errorf("bad size %q of ar member %s", hdr[48:58], name)
	}
	a.remaining, a.pad = size, size%2 == 1
	return name, size, nil
}

// Read reads from the current member.
func (a *arReader) Read(p []byte) (int, error) {
	if a.remaining == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > a.remaining {
		p = p[:a.remaining]
	}
	n, err := a.r.Read(p)
	a.remaining -= int64(n)
	if errors.Is(err, io.EOF) && a.remaining > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// noEOF turns an io.EOF in the middle of an archive into
// io.ErrUnexpectedEOF, which is what it means there.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
