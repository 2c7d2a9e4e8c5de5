package logtree

import (
	"bytes"
	"io"
	"os"
	"sync"
	"time"
	"unicode/utf8"
)

// MaxRawLineLength is the maximum size in bytes of the data of one raw entry.
// Longer lines are split into consecutive entries, cut at UTF-8 character
// boundaries where possible. The bound exists so that a producer which never
// writes a newline cannot make the tree buffer unbounded amounts of memory.
const MaxRawLineLength = 4096

// RawFor returns a writer which turns each newline-terminated line written to
// it into a raw entry of dn (without the newline and any preceding carriage
// return). Incomplete lines are buffered until their newline arrives or the
// writer is closed. Lines longer than MaxRawLineLength are split. The writer
// is safe for concurrent use; it is meant to receive the output of a child
// process.
func (l *LogTree) RawFor(dn DN) (io.WriteCloser, error) {
	n, err := l.node(dn)
	if err != nil {
		return nil, err
	}
	return &rawWriter{node: n}, nil
}

// MustRawFor is RawFor for DNs known to be valid. It panics if dn is
// malformed.
func (l *LogTree) MustRawFor(dn DN) io.WriteCloser {
	w, err := l.RawFor(dn)
	if err != nil {
		panic(err)
	}
	return w
}

type rawWriter struct {
	node *node

	mu sync.Mutex
	// partial is the beginning of a line whose newline has not been written
	// yet. It never holds more than MaxRawLineLength bytes after a Write.
	partial []byte
	closed  bool
}

func (w *rawWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, os.ErrClosed
	}
	written := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.partial = append(w.partial, p...)
			w.emitOverlong()
			break
		}
		if len(w.partial) == 0 {
			w.emitLine(p[:i])
		} else {
			w.partial = append(w.partial, p[:i]...)
			w.emitLine(w.partial)
			w.partial = w.partial[:0]
		}
		p = p[i+1:]
	}
	return written, nil
}

// Close emits a pending incomplete line, if any. Writing after Close fails.
func (w *rawWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	if len(w.partial) > 0 {
		w.emitLine(w.partial)
		w.partial = nil
	}
	return nil
}

// emitOverlong emits full-sized chunks off the front of an incomplete line
// which has grown beyond the limit. A line of exactly the limit is kept, as
// its newline might be next.
func (w *rawWriter) emitOverlong() {
	rest := w.partial
	for len(rest) > MaxRawLineLength {
		cut := chunkEnd(rest)
		w.emit(rest[:cut])
		rest = rest[cut:]
	}
	w.partial = append(w.partial[:0], rest...)
}

func (w *rawWriter) emitLine(line []byte) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	for len(line) > MaxRawLineLength {
		cut := chunkEnd(line)
		w.emit(line[:cut])
		line = line[cut:]
	}
	w.emit(line)
}

// chunkEnd returns where to cut b, which is longer than the limit, so that the
// first chunk is as long as possible without splitting a UTF-8 sequence.
func chunkEnd(b []byte) int {
	for cut := MaxRawLineLength; cut > MaxRawLineLength-utf8.UTFMax; cut-- {
		if utf8.RuneStart(b[cut]) {
			return cut
		}
	}
	// Not UTF-8 anyway.
	return MaxRawLineLength
}

// rawEntry lays out an entry and its payload in one allocation.
type rawEntry struct {
	entry   LogEntry
	payload RawPayload
}

func (w *rawWriter) emit(data []byte) {
	re := &rawEntry{}
	re.payload = RawPayload{timestamp: time.Now(), data: string(data)}
	re.entry.DN = w.node.dn
	re.entry.Raw = &re.payload
	w.node.append(&re.entry)
}
