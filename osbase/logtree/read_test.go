package logtree

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestRingBufferBoundPerDN(t *testing.T) {
	lt := NewWithConfig(Config{EntriesPerDN: 5})
	a := lt.MustLeveledFor("root.a")
	b := lt.MustLeveledFor("root.b")
	for i := range 12 {
		a.Infof("a%d", i)
		if i < 3 {
			b.Infof("b%d", i)
		}
	}
	if got, want := texts(backlog(t, lt, "root.a")), []string{"a7", "a8", "a9", "a10", "a11"}; !slices.Equal(got, want) {
		t.Errorf("root.a: got %q, want %q", got, want)
	}
	if got, want := texts(backlog(t, lt, "root.b")), []string{"b0", "b1", "b2"}; !slices.Equal(got, want) {
		t.Errorf("root.b: chatty sibling evicted entries, got %q, want %q", got, want)
	}
}

// setupTree logs, interleaved in time:
//
//	root.a:   I a0, W a1, E a2, raw a3
//	root.a.b: I b0, raw b1
//	root.c:   I c0
func setupTree(t *testing.T) *LogTree {
	t.Helper()
	lt := New()
	a := lt.MustLeveledFor("root.a")
	ab := lt.MustLeveledFor("root.a.b")
	c := lt.MustLeveledFor("root.c")
	araw := lt.MustRawFor("root.a")
	abraw := lt.MustRawFor("root.a.b")
	a.Info("a0")
	ab.Info("b0")
	c.Info("c0")
	a.Warning("a1")
	fmt.Fprintln(abraw, "b1")
	a.Error("a2")
	fmt.Fprintln(araw, "a3")
	return lt
}

func TestReadBacklog(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dn      DN
		opts    []LogReadOption
		want    []string
		wantErr bool
	}{
		{name: "NoBacklogRequested", dn: "root.a", want: []string{}},
		{name: "All", dn: "root.a", opts: []LogReadOption{WithBacklog(BacklogAllAvailable)}, want: []string{"a0", "a1", "a2", "a3"}},
		{name: "Zero", dn: "root.a", opts: []LogReadOption{WithBacklog(0)}, want: []string{}},
		{name: "LastTwo", dn: "root.a", opts: []LogReadOption{WithBacklog(2)}, want: []string{"a2", "a3"}},
		{name: "MoreThanAvailable", dn: "root.a", opts: []LogReadOption{WithBacklog(100)}, want: []string{"a0", "a1", "a2", "a3"}},
		{name: "Children", dn: "root.a", opts: []LogReadOption{WithBacklog(BacklogAllAvailable), WithChildren()}, want: []string{"a0", "b0", "a1", "b1", "a2", "a3"}},
		{name: "ChildrenLastThree", dn: "root.a", opts: []LogReadOption{WithBacklog(3), WithChildren()}, want: []string{"b1", "a2", "a3"}},
		{name: "WholeTree", dn: "", opts: []LogReadOption{WithBacklog(BacklogAllAvailable), WithChildren()}, want: []string{"a0", "b0", "c0", "a1", "b1", "a2", "a3"}},
		{name: "RootWithoutChildren", dn: "", opts: []LogReadOption{WithBacklog(BacklogAllAvailable)}, want: []string{}},
		{name: "UnknownDN", dn: "root.x", opts: []LogReadOption{WithBacklog(BacklogAllAvailable)}, want: []string{}},
		{name: "MinSeverity", dn: "root.a", opts: []LogReadOption{WithBacklog(BacklogAllAvailable), WithChildren(), LeveledWithMinimumSeverity(WARNING)}, want: []string{"a1", "b1", "a2", "a3"}},
		{name: "MinSeverityOnlyLeveled", dn: "root.a", opts: []LogReadOption{WithBacklog(BacklogAllAvailable), LeveledWithMinimumSeverity(ERROR), OnlyLeveled()}, want: []string{"a2"}},
		{name: "OnlyRaw", dn: "root.a", opts: []LogReadOption{WithBacklog(BacklogAllAvailable), WithChildren(), OnlyRaw()}, want: []string{"b1", "a3"}},
		{name: "OnlyLeveled", dn: "root.a", opts: []LogReadOption{WithBacklog(BacklogAllAvailable), WithChildren(), OnlyLeveled()}, want: []string{"a0", "b0", "a1", "a2"}},
		{name: "LastNCountsMatchingOnly", dn: "root.a", opts: []LogReadOption{WithBacklog(2), OnlyLeveled()}, want: []string{"a1", "a2"}},
		{name: "ConflictingFilters", dn: "root.a", opts: []LogReadOption{OnlyRaw(), OnlyLeveled()}, wantErr: true},
		{name: "NegativeBacklog", dn: "root.a", opts: []LogReadOption{WithBacklog(-2)}, wantErr: true},
		{name: "InvalidSeverity", dn: "root.a", opts: []LogReadOption{LeveledWithMinimumSeverity(FATAL + 1)}, wantErr: true},
		{name: "InvalidDN", dn: "root..a", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lt := setupTree(t)
			r, err := lt.Read(tc.dn, tc.opts...)
			if tc.wantErr {
				if err == nil {
					t.Fatal("want error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if r.Stream != nil {
				t.Error("Stream set without WithStream")
			}
			if got := texts(r.Backlog); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestReadStream(t *testing.T) {
	lt := New()
	a := lt.MustLeveledFor("root.a")
	other := lt.MustLeveledFor("root.other")
	a.Info("before")

	r, err := lt.Read("root.a", WithStream(), WithBacklog(BacklogAllAvailable), WithChildren(), LeveledWithMinimumSeverity(WARNING))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if len(r.Backlog) != 0 {
		t.Errorf("backlog %q, want none (filtered)", texts(r.Backlog))
	}

	a.Info("filtered")
	other.Warning("other DN")
	a.Warning("w1")
	// Children created after the read began are streamed too.
	lt.MustLeveledFor("root.a.late.child").Error("late")
	fmt.Fprintln(lt.MustRawFor("root.a"), "raw")
	a.Error("e1")

	got := receive(t, r.Stream, 4)
	if want := []string{"w1", "late", "raw", "e1"}; !slices.Equal(texts(got), want) {
		t.Errorf("streamed %q, want %q", texts(got), want)
	}
	if got[1].DN != "root.a.late.child" {
		t.Errorf("late entry DN %q", got[1].DN)
	}
	if r.Missed() != 0 {
		t.Errorf("missed %d", r.Missed())
	}

	r.Close()
	r.Close()
	a.Error("after close")
	if e, ok := <-r.Stream; ok {
		t.Errorf("stream delivered %q after Close, want closed", e.String())
	}
}

func TestReadStreamWithoutChildren(t *testing.T) {
	lt := New()
	r, err := lt.Read("root.a", WithStream())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	lt.MustLeveledFor("root.a.child").Info("child")
	lt.MustLeveledFor("root.a").Info("marker")
	if got := texts(receive(t, r.Stream, 1)); !slices.Equal(got, []string{"marker"}) {
		t.Errorf("got %q, want only the marker", got)
	}
}

func TestSlowReaderDoesNotBlockWriter(t *testing.T) {
	const buffer, written = 4, 1000
	lt := NewWithConfig(Config{StreamBuffer: buffer})
	r, err := lt.Read("root", WithStream())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	done := make(chan struct{})
	go func() {
		l := lt.MustLeveledFor("root")
		for i := range written {
			l.Infof("%d", i)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("writer blocked by a reader that does not read")
	}
	if got, want := r.Missed(), uint64(written-buffer); got != want {
		t.Errorf("Missed() = %d, want %d", got, want)
	}
	if got, want := texts(receive(t, r.Stream, buffer)), []string{"0", "1", "2", "3"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want the first %d entries", got, buffer)
	}
	if got := len(backlog(t, lt, "root")); got != written {
		t.Errorf("backlog has %d entries, want %d", got, written)
	}
}

// TestReadConcurrentWriters checks that a reader attaching while writers are
// busy sees every entry exactly once and in order, across backlog and stream.
func TestReadConcurrentWriters(t *testing.T) {
	const writers, perWriter = 4, 5000
	lt := NewWithConfig(Config{EntriesPerDN: perWriter, StreamBuffer: writers * perWriter})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := lt.MustLeveledFor(DN(fmt.Sprintf("root.w%d", w)))
			for i := range perWriter {
				l.Infof("%d", i)
			}
		}()
	}
	// Attach while the writers are busy.
	deadline := time.Now().Add(10 * time.Second)
	for lt.seq.Load() < writers*perWriter/8 {
		if time.Now().After(deadline) {
			t.Fatal("writers did not start")
		}
		runtime.Gosched()
	}
	r, err := lt.Read("root", WithChildren(), WithBacklog(BacklogAllAvailable), WithStream())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	wg.Wait()
	if len(r.Backlog) == writers*perWriter {
		t.Log("writers finished before the reader attached, test is ineffective")
	}

	// Delivery happens synchronously within the writes, so everything
	// streamed is in the channel by now.
	all := slices.Clone(r.Backlog)
	for len(r.Stream) > 0 {
		all = append(all, <-r.Stream)
	}
	next := make(map[DN]int)
	for _, e := range all {
		want := fmt.Sprint(next[e.DN])
		if got := e.Leveled.MessagesJoined(); got != want {
			t.Fatalf("%s: got entry %s, want %s", e.DN, got, want)
		}
		next[e.DN]++
	}
	for dn, n := range next {
		if n != perWriter {
			t.Errorf("%s: got %d entries, want %d", dn, n, perWriter)
		}
	}
	if r.Missed() != 0 {
		t.Errorf("missed %d", r.Missed())
	}
}
