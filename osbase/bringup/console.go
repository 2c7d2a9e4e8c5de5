package bringup

import (
	"fmt"
	"io"
	"strings"
	"time"

	"metropolis.dev/osbase/logtree"
)

// ConsoleOptions choose what the console shows of the log tree. Every
// entry stays in the tree whatever the console shows.
type ConsoleOptions struct {
	// Quiet thins out subtrees too noisy for a serial console.
	Quiet []QuietSubtree
	// Shorten shortens DNs on the console.
	Shorten logtree.ShortenDictionary
}

// QuietSubtree limits what the console shows of DN and every DN below it:
// only leveled entries of at least MinSeverity, and no raw entries. A zero
// MinSeverity hides the subtree altogether. For an entry in several quiet
// subtrees, the one with the longest DN applies.
type QuietSubtree struct {
	DN          logtree.DN
	MinSeverity logtree.Severity
}

// shows tells whether the console shows e.
func (o *ConsoleOptions) shows(e *logtree.LogEntry) bool {
	var rule *QuietSubtree
	for i := range o.Quiet {
		q := &o.Quiet[i]
		if !inSubtree(e.DN, q.DN) {
			continue
		}
		if rule == nil || len(q.DN) > len(rule.DN) {
			rule = q
		}
	}
	switch {
	case rule == nil:
		return true
	case rule.MinSeverity == 0 || e.Leveled == nil:
		return false
	}
	return e.Leveled.Severity().AtLeast(rule.MinSeverity)
}

// inSubtree tells whether dn is root or below it.
func inSubtree(dn, root logtree.DN) bool {
	if root == "" || dn == root {
		return true
	}
	return strings.HasPrefix(string(dn), string(root)+".")
}

// A console writes every entry of a log tree that its options show to a
// writer (the system console), one entry per write, in the concise format.
type console struct {
	w      io.Writer
	opts   ConsoleOptions
	reader *logtree.LogReader
	// done is closed once every entry of the stream has been written.
	done chan struct{}
}

// startConsole starts writing the entries of lt logged from now on to w.
func startConsole(w io.Writer, lt *logtree.LogTree, opts ConsoleOptions) (*console, error) {
	r, err := lt.Read("", logtree.WithChildren(), logtree.WithStream())
	if err != nil {
		return nil, fmt.Errorf("reading the log tree: %w", err)
	}
	c := &console{w: w, opts: opts, reader: r, done: make(chan struct{})}
	go c.run()
	return c, nil
}

func (c *console) run() {
	defer close(c.done)
	var reported uint64
	var b strings.Builder
	for e := range c.reader.Stream {
		// A serial console is slow; the tree drops entries for it
		// rather than wait. Say so, or the gap goes unnoticed.
		if missed := c.reader.Missed(); missed > reported {
			fmt.Fprintf(c.w, "[console: %d log entries not shown, the console could not keep up]\n", missed-reported)
			reported = missed
		}
		if !c.opts.shows(e) {
			continue
		}
		b.Reset()
		for _, line := range e.ConciseString(c.opts.Shorten, 0) {
			b.WriteString(line)
			b.WriteByte('\n')
		}
		io.WriteString(c.w, b.String())
	}
}

// drain stops the console from taking new entries and waits until it has
// written those it has taken, or until timeout.
func (c *console) drain(timeout time.Duration) {
	c.reader.Close()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
	}
}
