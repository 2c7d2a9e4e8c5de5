package logtree

import (
	"testing"
	"time"
)

// backlog reads the backlog of dn and fails the test on error.
func backlog(t *testing.T, lt *LogTree, dn DN, opts ...LogReadOption) []*LogEntry {
	t.Helper()
	r, err := lt.Read(dn, append([]LogReadOption{WithBacklog(BacklogAllAvailable)}, opts...)...)
	if err != nil {
		t.Fatalf("Read(%q): %v", dn, err)
	}
	return r.Backlog
}

// texts returns the Text of every entry.
func texts(entries []*LogEntry) []string {
	res := make([]string, 0, len(entries))
	for _, e := range entries {
		res = append(res, e.Text())
	}
	return res
}

// receive waits for n entries on ch, failing the test if they do not arrive
// in time or the channel is closed early.
func receive(t *testing.T, ch <-chan *LogEntry, n int) []*LogEntry {
	t.Helper()
	deadline := time.After(10 * time.Second)
	var res []*LogEntry
	for len(res) < n {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("stream closed after %d of %d entries", len(res), n)
			}
			res = append(res, e)
		case <-deadline:
			t.Fatalf("timed out after %d of %d entries", len(res), n)
		}
	}
	return res
}
