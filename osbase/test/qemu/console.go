package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

const (
	// maxLineLength bounds a console line: longer output without a newline
	// is split, so that a guest cannot make the harness buffer without
	// limit.
	maxLineLength = 16 << 10
	// maxLines bounds the transcript. When it is exceeded, the oldest half
	// is dropped.
	maxLines = 100_000
	// tailLines is the number of last lines errors show.
	tailLines = 30
)

// A Console is the guest's first serial port (ttyS0). It reads what the
// guest prints line by line, keeps a transcript, and lets a test wait for a
// line with Expect. Writing to it types into the serial port.
//
// Lines are cleaned before they are stored: carriage returns, terminal
// escape sequences (which firmware and boot loaders print to position the
// cursor) and other control characters except tabs are removed, and invalid
// UTF-8 is replaced, so that lines compare as the text a person would read.
type Console struct {
	// logLine, if not nil, is called with every line as it arrives.
	logLine func(line string)
	// in is qemu's standard input, connected to the serial port.
	in io.Writer

	mu sync.Mutex
	// lines holds the transcript, from line number dropped on.
	lines   []string
	dropped int
	// partial is the start of a line whose newline has not arrived.
	partial string
	// cursor is the number of the line after the last match of Expect.
	cursor int
	// changed is closed and replaced when lines are added or the console
	// ends.
	changed chan struct{}
	// ended is set when qemu has exited and all output has been read;
	// exitErr then explains why qemu exited.
	ended   bool
	exitErr error
}

func newConsole(in io.Writer, logLine func(string)) *Console {
	return &Console{in: in, logLine: logLine, changed: make(chan struct{})}
}

// Write sends bytes to the guest's serial port, as if typed.
func (c *Console) Write(p []byte) (int, error) {
	n, err := c.in.Write(p)
	if err != nil {
		return n, fmt.Errorf("writing to console: %w", err)
	}
	return n, nil
}

// read splits r into lines until it returns an error (io.EOF when qemu has
// exited).
func (c *Console) read(r io.Reader) {
	buf := make([]byte, 32<<10)
	var partial []byte
	// add appends to the unfinished line, splitting it if it grows too
	// long.
	add := func(b []byte) {
		for len(partial)+len(b) > maxLineLength {
			n := maxLineLength - len(partial)
			c.addLine(append(partial, b[:n]...))
			partial, b = partial[:0], b[n:]
		}
		partial = append(partial, b...)
	}
	for {
		n, err := r.Read(buf)
		data := buf[:n]
		for {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				add(data)
				break
			}
			add(data[:i])
			c.addLine(partial)
			partial = partial[:0]
			data = data[i+1:]
		}
		if err != nil {
			if len(partial) > 0 {
				c.addLine(partial)
			}
			return
		}
		c.mu.Lock()
		c.partial = cleanLine(partial)
		c.mu.Unlock()
	}
}

func (c *Console) addLine(raw []byte) {
	line := cleanLine(raw)
	c.mu.Lock()
	c.lines = append(c.lines, line)
	if len(c.lines) > maxLines {
		drop := len(c.lines) / 2
		c.lines = append([]string(nil), c.lines[drop:]...)
		c.dropped += drop
	}
	c.partial = ""
	c.notifyLocked()
	c.mu.Unlock()
	if c.logLine != nil {
		c.logLine(line)
	}
}

// end records that no more lines will arrive, and why.
func (c *Console) end(exitErr error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ended = true
	c.exitErr = exitErr
	c.notifyLocked()
}

func (c *Console) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// cleanLine turns raw serial output into text: it drops carriage returns,
// ANSI escape sequences and other control characters except tabs, and
// replaces invalid UTF-8.
func cleanLine(raw []byte) string {
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == 0x1b:
			i = skipEscape(raw, i)
		case c == '\t' || c >= 0x20 && c != 0x7f:
			b.WriteByte(c)
		}
	}
	s := b.String()
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}

// skipEscape returns the index of the last byte of the escape sequence that
// starts at raw[i], an ESC byte.
func skipEscape(raw []byte, i int) int {
	if i+1 >= len(raw) {
		return i
	}
	if raw[i+1] != '[' {
		// A two-byte sequence such as ESC c or ESC 7.
		return i + 1
	}
	// A control sequence: ESC [, parameter bytes 0x30-0x3f, intermediate
	// bytes 0x20-0x2f, and one final byte 0x40-0x7e.
	j := i + 2
	for j < len(raw) && raw[j] >= 0x30 && raw[j] <= 0x3f {
		j++
	}
	for j < len(raw) && raw[j] >= 0x20 && raw[j] <= 0x2f {
		j++
	}
	if j < len(raw) && raw[j] >= 0x40 && raw[j] <= 0x7e {
		return j
	}
	// Malformed: drop only what was recognized.
	return j - 1
}

// Expect waits for a console line containing substr and returns it. It
// looks at the lines after the one the previous Expect or ExpectRegexp
// matched, including lines that arrived before the call, so that a test
// can expect one line after another. It gives up after Timeout(within), or
// when qemu exits, with an error that shows the last lines of the console.
func (c *Console) Expect(within time.Duration, substr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout(within))
	defer cancel()
	line, err := c.expect(ctx, fmt.Sprintf("line containing %q", substr), func(line string) bool {
		return strings.Contains(line, substr)
	})
	if err != nil {
		return "", c.expectError(err, within)
	}
	return line, nil
}

// ExpectRegexp is like Expect, but waits for a line that re matches and
// returns the matched text and its submatches, as re.FindStringSubmatch.
func (c *Console) ExpectRegexp(within time.Duration, re *regexp.Regexp) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout(within))
	defer cancel()
	var m []string
	_, err := c.expect(ctx, fmt.Sprintf("line matching %q", re), func(line string) bool {
		m = re.FindStringSubmatch(line)
		return m != nil
	})
	if err != nil {
		return nil, c.expectError(err, within)
	}
	return m, nil
}

// ExpectFunc is the general form of Expect: it waits until ctx is done for
// a line for which match returns true. What describes the line in errors,
// as in "line containing x".
func (c *Console) ExpectFunc(ctx context.Context, what string, match func(line string) bool) (string, error) {
	line, err := c.expect(ctx, what, match)
	if err != nil {
		return "", fmt.Errorf("%w\n%s", err, c.tailReport())
	}
	return line, nil
}

// errNotSeen is wrapped by the errors of expect.
var errNotSeen = errors.New("console")

func (c *Console) expect(ctx context.Context, what string, match func(string) bool) (string, error) {
	// The cursor only moves on a match, so that a failed Expect leaves
	// the lines it looked at for the next one.
	pos := -1
	for {
		c.mu.Lock()
		if pos < c.cursor {
			pos = c.cursor
		}
		if pos < c.dropped {
			pos = c.dropped
		}
		for pos < c.dropped+len(c.lines) {
			line := c.lines[pos-c.dropped]
			pos++
			if match(line) {
				c.cursor = pos
				c.mu.Unlock()
				return line, nil
			}
		}
		if c.ended {
			exitErr := c.exitErr
			c.mu.Unlock()
			if exitErr == nil {
				return "", fmt.Errorf("%w: qemu exited before printing a %s", errNotSeen, what)
			}
			return "", fmt.Errorf("%w: qemu exited before printing a %s: %w", errNotSeen, what, exitErr)
		}
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return "", fmt.Errorf("%w: no %s: %w", errNotSeen, what, context.Cause(ctx))
		}
	}
}

// expectError adds the timeout and the console's last lines to an error of
// expect.
func (c *Console) expectError(err error, within time.Duration) error {
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w (waited %v: base %v × %s %g)", err, Timeout(within), within, TimeoutScaleEnv, TimeoutScale())
	}
	return fmt.Errorf("%w\n%s", err, c.tailReport())
}

// tailReport describes the last lines of the console for an error message.
func (c *Console) tailReport() string {
	tail := c.Tail(tailLines)
	if len(tail) == 0 {
		return "the console is empty"
	}
	return fmt.Sprintf("last %d console lines:\n\t%s", len(tail), strings.Join(tail, "\n\t"))
}

// Lines returns a copy of the transcript's complete lines (see Transcript).
func (c *Console) Lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

// Tail returns up to n last lines of the console, including a final line
// whose newline has not arrived.
func (c *Console) Tail(n int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	lines := c.lines
	if c.partial != "" {
		lines = append(lines[:len(lines):len(lines)], c.partial)
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return append([]string(nil), lines...)
}

// Transcript returns everything the guest printed on the console, one line
// per line, including a final line whose newline has not arrived. Only the
// last 50,000 to 100,000 lines are kept; a note replaces older ones.
func (c *Console) Transcript() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	if c.dropped > 0 {
		fmt.Fprintf(&b, "[%d earlier lines dropped]\n", c.dropped)
	}
	for _, l := range c.lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	b.WriteString(c.partial)
	return b.String()
}
