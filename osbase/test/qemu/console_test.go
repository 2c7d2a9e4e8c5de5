package qemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"
)

// fakeConsole returns a console fed by the returned writer, as qemu's
// output would feed it. Closing the writer ends the console with exitErr;
// end does that and waits until the console has read everything.
func fakeConsole(t *testing.T, logLine func(string), exitErr error) (c *Console, w *io.PipeWriter, end func()) {
	t.Helper()
	r, w := io.Pipe()
	c = newConsole(&strings.Builder{}, logLine)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.read(r)
		c.end(exitErr)
	}()
	end = func() {
		w.Close()
		<-done
	}
	t.Cleanup(end)
	return c, w, end
}

func TestCleanLine(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                            "plain",
		"crlf\r":                           "crlf",
		"\x1b[2J\x1b[01;01H\x1b[=3hBdsDxe": "BdsDxe",
		"\x1b[1m\x1b[33mShell> \x1b[0m":    "Shell> ",
		"a\x1bcb":                          "ab",
		"tab\there":                        "tab\there",
		"bell\a nul\x00 del\x7f":           "bell nul del",
		"bad \xff utf8":                    "bad \uFFFD utf8",
		"ünïcode":                          "ünïcode",
		"cut \x1b":                         "cut ",
		"cut \x1b[12":                      "cut ",
		"odd \x1b[1\x01x":                  "odd x",
	} {
		if got := cleanLine([]byte(in)); got != want {
			t.Errorf("cleanLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExpectGoesForward(t *testing.T) {
	c, w, _ := fakeConsole(t, nil, nil)
	io.WriteString(w, "one\r\ntwo\nthree\nfour")
	line, err := c.Expect(time.Minute, "t")
	if err != nil || line != "two" {
		t.Fatalf("Expect(t) = %q, %v; want two", line, err)
	}
	m, err := c.ExpectRegexp(time.Minute, regexp.MustCompile(`^t(h)ree$`))
	if err != nil || len(m) != 2 || m[1] != "h" {
		t.Fatalf("ExpectRegexp = %q, %v; want [three h]", m, err)
	}
	// "one" lies before the last match; "four" has no newline yet.
	if _, err := c.Expect(10*time.Millisecond, "o"); err == nil {
		t.Fatal("Expect matched a line before the last match or an unfinished line")
	}
	if got := c.Tail(2); !equalStrings(got, []string{"three", "four"}) {
		t.Errorf("Tail(2) = %q, want [three four]", got)
	}
	// A line arriving while Expect waits is found.
	go io.WriteString(w, "ty\nfive\n")
	if line, err := c.Expect(time.Minute, "fi"); err != nil || line != "five" {
		t.Fatalf("Expect(fi) = %q, %v; want five", line, err)
	}
	if got, want := c.Transcript(), "one\ntwo\nthree\nfourty\nfive\n"; got != want {
		t.Errorf("Transcript() = %q, want %q", got, want)
	}
}

func TestExpectTimeout(t *testing.T) {
	c, w, _ := fakeConsole(t, nil, nil)
	for i := range 40 {
		fmt.Fprintf(w, "line %d\n", i)
	}
	// Wait until every line arrived, so the error shows the last ones.
	if _, err := c.Expect(time.Minute, "line 39"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := c.Expect(50*time.Millisecond, "missing")
	if err == nil {
		t.Fatal("Expect found a missing line")
	}
	if took := time.Since(start); took < Timeout(50*time.Millisecond) {
		t.Errorf("Expect gave up after %v, before its timeout", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the error %v is not a deadline error", err)
	}
	msg := err.Error()
	for _, want := range []string{`"missing"`, "last 30 console lines", "line 10\n", "line 39", TimeoutScaleEnv} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error does not contain %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "line 9\n") {
		t.Errorf("the error shows more than the last 30 lines:\n%s", msg)
	}
}

func TestExpectEnd(t *testing.T) {
	exitErr := errors.New("exit status 1")
	c, w, _ := fakeConsole(t, nil, exitErr)
	io.WriteString(w, "last words")
	w.Close()
	// The unfinished last line is still a line.
	if line, err := c.Expect(time.Minute, "words"); err != nil || line != "last words" {
		t.Fatalf("Expect = %q, %v; want the unfinished last line", line, err)
	}
	_, err := c.Expect(time.Minute, "more")
	if !errors.Is(err, exitErr) || !strings.Contains(err.Error(), "qemu exited before printing") {
		t.Errorf("Expect after the end returned %v, want qemu's exit error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.ExpectFunc(ctx, "anything", func(string) bool { return true }); err == nil {
		t.Error("ExpectFunc matched a line before the last match")
	}
}

func TestConsoleLogAndLimits(t *testing.T) {
	var logged []string
	c, w, end := fakeConsole(t, func(l string) { logged = append(logged, l) }, nil)
	long := strings.Repeat("x", maxLineLength+10)
	io.WriteString(w, "a\n"+long+"\nb\n")
	end()
	lines := c.Lines()
	if len(lines) < 4 || lines[0] != "a" || lines[len(lines)-1] != "b" {
		t.Fatalf("got %d lines, want a, the long line split, b", len(lines))
	}
	for _, l := range lines {
		if len(l) > maxLineLength {
			t.Errorf("a line of %d bytes was kept", len(l))
		}
	}
	if strings.Join(lines[1:len(lines)-1], "") != long {
		t.Error("the long line's pieces do not add up to it")
	}
	if !equalStrings(logged, lines) {
		t.Errorf("logged %d lines, the console has %d", len(logged), len(lines))
	}
}

func TestConsoleDropsOldLines(t *testing.T) {
	c, w, _ := fakeConsole(t, nil, nil)
	go func() {
		for i := range maxLines + 10 {
			fmt.Fprintf(w, "%d\n", i)
		}
	}()
	last := fmt.Sprint(maxLines + 9)
	if _, err := c.Expect(time.Minute, last); err != nil {
		t.Fatal(err)
	}
	lines := c.Lines()
	if len(lines) > maxLines || lines[len(lines)-1] != last {
		t.Errorf("the console kept %d lines ending in %q, want at most %d ending in %s", len(lines), lines[len(lines)-1], maxLines, last)
	}
	if tr := c.Transcript(); !strings.HasPrefix(tr, "[") || !strings.Contains(tr, "earlier lines dropped]") {
		t.Errorf("the transcript does not say lines were dropped: %.80q", tr)
	}
}

func TestConsoleWrite(t *testing.T) {
	var in strings.Builder
	c := newConsole(&in, nil)
	if _, err := io.WriteString(c, "help\n"); err != nil {
		t.Fatal(err)
	}
	if in.String() != "help\n" {
		t.Errorf("the guest got %q", in.String())
	}
}

func TestFailedExpectKeepsLines(t *testing.T) {
	c, w, _ := fakeConsole(t, nil, nil)
	io.WriteString(w, "booting\nkernel panic\n")
	waitForLines(t, c, 2)
	if _, err := c.Expect(time.Millisecond, "never printed"); err == nil {
		t.Fatal("Expect matched a line that was never printed")
	}
	if line, err := c.Expect(time.Minute, "panic"); err != nil || line != "kernel panic" {
		t.Fatalf("after a failed Expect, Expect(panic) = %q, %v; want the line the failed one looked at", line, err)
	}
}

// waitForLines waits until the console has read n lines.
func waitForLines(t *testing.T, c *Console, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for len(c.Lines()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("console read %d lines, want %d", len(c.Lines()), n)
		}
		time.Sleep(time.Millisecond)
	}
}
