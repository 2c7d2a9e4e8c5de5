package etcd

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"metropolis.dev/osbase/event"
	"metropolis.dev/osbase/test/etcdtest"
)

// testTimeout bounds every wait for something that should happen. It is
// generous because tests run under -race on small, busy machines.
const testTimeout = 60 * time.Second

// blockedFor is how long a Get that must block is given to wrongly return.
const blockedFor = 200 * time.Millisecond

var _ event.Watchable[string] = &Value[string]{}

var errBadValue = errors.New("bad value")

// decode turns keys into "key=value", deleted keys into "key deleted", and
// fails on values starting with "bad".
func decode(key, value []byte) (string, error) {
	switch {
	case value == nil:
		return string(key) + " deleted", nil
	case strings.HasPrefix(string(value), "bad"):
		return "", errBadValue
	}
	return string(key) + "=" + string(value), nil
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func mustGet(t *testing.T, w event.Watcher[string], opts ...event.GetOption[string]) string {
	t.Helper()
	val, err := w.Get(testContext(t), opts...)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return val
}

// mustGetAll calls Get n times and returns the values.
func mustGetAll(t *testing.T, w event.Watcher[string], n int, opts ...event.GetOption[string]) []string {
	t.Helper()
	var vals []string
	for range n {
		vals = append(vals, mustGet(t, w, opts...))
	}
	return vals
}

func mustBlock(t *testing.T, w event.Watcher[string]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), blockedFor)
	defer cancel()
	if val, err := w.Get(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get returned (%q, %v), want it to block", val, err)
	}
}

func mustBacklogDone(t *testing.T, w event.Watcher[string], opts ...event.GetOption[string]) {
	t.Helper()
	opts = append(opts, event.BacklogOnly[string]())
	if val, err := w.Get(testContext(t), opts...); !errors.Is(err, event.ErrBacklogDone) {
		t.Fatalf("BacklogOnly Get returned (%q, %v), want ErrBacklogDone", val, err)
	}
}

func put(t *testing.T, cl *clientv3.Client, key, value string) {
	t.Helper()
	if _, err := cl.Put(testContext(t), key, value); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func del(t *testing.T, cl *clientv3.Client, key string) {
	t.Helper()
	if _, err := cl.Delete(testContext(t), key); err != nil {
		t.Fatalf("Delete(%q): %v", key, err)
	}
}

func prefix(p string) Option {
	return Range(clientv3.GetPrefixRangeEnd(p))
}

func TestSingleKey(t *testing.T) {
	s := etcdtest.Start(t)
	writer := s.NewClient(t)
	v := NewValue(s.Client, "k", decode)
	w := v.Watch()
	defer w.Close()

	// A missing key has no backlog, and Get waits for it to appear.
	mustBacklogDone(t, w)
	mustBlock(t, w)
	put(t, writer, "k", "1")
	if got := mustGet(t, w); got != "k=1" {
		t.Fatalf("Get returned %q, want k=1", got)
	}

	// Neighbouring keys are not part of a single-key Value.
	put(t, writer, "k0", "x")
	put(t, writer, "j", "x")
	mustBlock(t, w)

	// A watcher may skip values, but never goes back to an older one.
	updates := []string{"k=2", "k=3", "k=4"}
	for _, u := range updates {
		put(t, writer, "k", strings.TrimPrefix(u, "k="))
	}
	for last := -1; last != len(updates)-1; {
		got := mustGet(t, w)
		i := slices.Index(updates, got)
		if i <= last {
			t.Fatalf("Get returned %q after %q", got, updates[max(last, 0)])
		}
		last = i
	}

	put(t, writer, "k", "")
	if got := mustGet(t, w); got != "k=" {
		t.Fatalf("Get after storing empty value returned %q, want k=", got)
	}
	del(t, writer, "k")
	if got := mustGet(t, w); got != "k deleted" {
		t.Fatalf("Get after delete returned %q, want k deleted", got)
	}

	// A new watcher's backlog is the current value.
	put(t, writer, "k", "5")
	late := v.Watch()
	defer late.Close()
	if got := mustGet(t, late, event.BacklogOnly[string]()); got != "k=5" {
		t.Fatalf("BacklogOnly Get on new watcher returned %q, want k=5", got)
	}
	mustBacklogDone(t, late)
	put(t, writer, "k", "6")
	if got := mustGet(t, late); got != "k=6" {
		t.Fatalf("Get returned %q, want k=6", got)
	}
}

func TestRange(t *testing.T) {
	s := etcdtest.Start(t)
	writer := s.NewClient(t)
	put(t, writer, "/r/b", "2")
	put(t, writer, "/r/a", "1")
	put(t, writer, "/r/c", "3")
	put(t, writer, "/rx", "outside")
	put(t, writer, "/s/a", "outside")

	w := NewValue(s.Client, "/r/", decode, prefix("/r/")).Watch()
	defer w.Close()

	backlog := mustGetAll(t, w, 3, event.BacklogOnly[string]())
	if want := []string{"/r/a=1", "/r/b=2", "/r/c=3"}; !slices.Equal(backlog, want) {
		t.Fatalf("backlog is %q, want %q", backlog, want)
	}
	mustBacklogDone(t, w)
	// The end of the backlog is final, even if keys change meanwhile.
	put(t, writer, "/r/a", "4")
	mustBacklogDone(t, w)

	put(t, writer, "/r/d", "5")
	put(t, writer, "/s/b", "outside")
	del(t, writer, "/r/b")
	put(t, writer, "/r/a", "6")
	// The order in which keys come back depends on how etcd batches its
	// watch responses, which the state tests cover without etcd.
	mustGetState(t, w, map[string]string{
		"/r/a": "/r/a=6",
		"/r/b": "/r/b deleted",
		"/r/d": "/r/d=5",
	})
	mustBlock(t, w)
}

// mustGetState calls Get until the latest value returned for each key is
// the one in want, and fails if Get returns any other key.
func mustGetState(t *testing.T, w event.Watcher[string], want map[string]string) {
	t.Helper()
	got := make(map[string]string)
	for !maps.Equal(got, want) {
		val := mustGet(t, w)
		key, _, _ := strings.Cut(val, "=")
		key, _, _ = strings.Cut(key, " ")
		if _, ok := want[key]; !ok {
			t.Fatalf("Get returned %q, which is not among the changes %q", val, want)
		}
		got[key] = val
	}
}

func TestFilter(t *testing.T) {
	s := etcdtest.Start(t)
	put(t, s.Client, "/f/a", "keep 1")
	put(t, s.Client, "/f/b", "drop")
	put(t, s.Client, "/f/c", "keep 2")

	keep := event.Filter(func(s string) bool { return strings.Contains(s, "keep") })
	w := NewValue(s.Client, "/f/", decode, prefix("/f/")).Watch()
	defer w.Close()

	backlog := mustGetAll(t, w, 2, keep, event.BacklogOnly[string]())
	if want := []string{"/f/a=keep 1", "/f/c=keep 2"}; !slices.Equal(backlog, want) {
		t.Fatalf("filtered backlog is %q, want %q", backlog, want)
	}
	mustBacklogDone(t, w, keep)

	put(t, s.Client, "/f/d", "drop")
	put(t, s.Client, "/f/e", "keep 3")
	if got := mustGet(t, w, keep); got != "/f/e=keep 3" {
		t.Fatalf("filtered Get returned %q, want /f/e=keep 3", got)
	}
}

func TestDecoderError(t *testing.T) {
	s := etcdtest.Start(t)
	put(t, s.Client, "/d/a", "bad")
	put(t, s.Client, "/d/b", "good")
	w := NewValue(s.Client, "/d/", decode, prefix("/d/")).Watch()
	defer w.Close()

	checkError := func(key string) {
		t.Helper()
		_, err := w.Get(testContext(t))
		if !errors.Is(err, errBadValue) || !strings.Contains(err.Error(), key) {
			t.Fatalf("Get returned %v, want errBadValue mentioning %q", err, key)
		}
	}
	// A value that fails to decode does not stop the watcher.
	checkError("/d/a")
	if got := mustGet(t, w); got != "/d/b=good" {
		t.Fatalf("Get after decoder error returned %q, want /d/b=good", got)
	}
	put(t, s.Client, "/d/c", "bad")
	checkError("/d/c")
	put(t, s.Client, "/d/c", "fixed")
	if got := mustGet(t, w); got != "/d/c=fixed" {
		t.Fatalf("Get returned %q, want /d/c=fixed", got)
	}
}

// compact compacts away all revisions but the current one.
func compact(t *testing.T, cl *clientv3.Client) {
	t.Helper()
	res, err := cl.Get(testContext(t), "any")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if _, err := cl.Compact(testContext(t), res.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("Compact: %v", err)
	}
}

// TestCompaction lets a watcher fall behind until the revision it would
// continue from is compacted. Watchers only start their etcd watch once they
// have returned their backlog, which makes the gap deterministic.
func TestCompaction(t *testing.T) {
	s := etcdtest.Start(t)
	writer := s.NewClient(t)

	t.Run("single key", func(t *testing.T) {
		cl := &recordingClient{Client: s.Client}
		put(t, writer, "k", "0")
		w := NewValue(cl, "k", decode).Watch()
		defer w.Close()
		if got := mustGet(t, w); got != "k=0" {
			t.Fatalf("Get returned %q, want k=0", got)
		}
		for i := 1; i <= 50; i++ {
			put(t, writer, "k", fmt.Sprint(i))
		}
		compact(t, writer)

		if got := mustGet(t, w); got != "k=50" {
			t.Fatalf("Get after compaction returned %q, want k=50", got)
		}
		put(t, writer, "k", "51")
		if got := mustGet(t, w); got != "k=51" {
			t.Fatalf("Get returned %q, want k=51", got)
		}
		checkCompactedOnce(t, cl)
	})

	t.Run("range", func(t *testing.T) {
		cl := &recordingClient{Client: s.Client}
		put(t, writer, "/c/a", "0")
		put(t, writer, "/c/b", "0")
		w := NewValue(cl, "/c/", decode, prefix("/c/")).Watch()
		defer w.Close()
		mustGetAll(t, w, 2, event.BacklogOnly[string]())

		for i := 1; i <= 50; i++ {
			put(t, writer, "/c/a", fmt.Sprint(i))
		}
		del(t, writer, "/c/b")
		put(t, writer, "/c/c", "0")
		// Created and deleted within the gap, so never seen.
		put(t, writer, "/c/d", "0")
		del(t, writer, "/c/d")
		compact(t, writer)

		got := mustGetAll(t, w, 3)
		if want := []string{"/c/a=50", "/c/c=0", "/c/b deleted"}; !slices.Equal(got, want) {
			t.Fatalf("changes after compaction are %q, want %q", got, want)
		}
		// Catching up after compaction is not backlog.
		mustBacklogDone(t, w)
		mustBlock(t, w)
		put(t, writer, "/c/c", "1")
		if got := mustGet(t, w); got != "/c/c=1" {
			t.Fatalf("Get returned %q, want /c/c=1", got)
		}
		checkCompactedOnce(t, cl)
	})
}

// checkCompactedOnce checks that the first watch failed on compaction and
// the watcher then started a second one.
func checkCompactedOnce(t *testing.T, cl *recordingClient) {
	t.Helper()
	watches := cl.started()
	if len(watches) != 2 {
		t.Fatalf("watcher started %d etcd watches, want 2", len(watches))
	}
	select {
	case <-watches[0].compacted:
	default:
		t.Fatalf("first etcd watch did not fail on compaction")
	}
}

func TestWatchLost(t *testing.T) {
	s := etcdtest.Start(t)
	cl := &recordingClient{Client: s.Client}
	w := NewValue(cl, "/l/", decode, prefix("/l/")).Watch()
	defer w.Close()

	put(t, s.Client, "/l/a", "0")
	mustGet(t, w)
	put(t, s.Client, "/l/a", "1")
	if got := mustGet(t, w); got != "/l/a=1" {
		t.Fatalf("Get returned %q, want /l/a=1", got)
	}
	cl.waitStarted(t, 0).breakWatch()

	// Changes made while the watch is down are read back.
	put(t, s.Client, "/l/a", "2")
	put(t, s.Client, "/l/b", "1")
	if got := mustGetAll(t, w, 2); !slices.Equal(got, []string{"/l/a=2", "/l/b=1"}) {
		t.Fatalf("changes after lost watch are %q", got)
	}
	put(t, s.Client, "/l/b", "2")
	if got := mustGet(t, w); got != "/l/b=2" {
		t.Fatalf("Get returned %q, want /l/b=2", got)
	}
	if n := len(cl.started()); n != 2 {
		t.Fatalf("watcher started %d etcd watches, want 2", n)
	}
}

func TestContext(t *testing.T) {
	s := etcdtest.Start(t)
	put(t, s.Client, "k", "1")
	w := NewValue(s.Client, "k", decode).Watch()
	defer w.Close()

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := w.Get(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with cancelled context returned %v, want context.Canceled", err)
	}
	mustGet(t, w)

	ctx, cancel = context.WithCancel(context.Background())
	errc := make(chan error)
	go func() {
		_, err := w.Get(ctx)
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("blocked Get returned %v after cancel, want context.Canceled", err)
	}
	mustBlock(t, w)

	// The watcher survives the cancelled Gets.
	put(t, s.Client, "k", "2")
	if got := mustGet(t, w); got != "k=2" {
		t.Fatalf("Get returned %q, want k=2", got)
	}
}

func TestClose(t *testing.T) {
	s := etcdtest.Start(t)
	cl := &recordingClient{Client: s.Client}
	put(t, s.Client, "k", "1")
	w := NewValue(cl, "k", decode).Watch()
	mustGet(t, w)

	errc := make(chan error)
	go func() {
		_, err := w.Get(testContext(t))
		errc <- err
	}()
	// Wait for the Get to block in the etcd watch, so that Close has to
	// interrupt it.
	watch := cl.waitStarted(t, 0)
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-errc; !errors.Is(err, event.ErrWatcherClosed) {
		t.Fatalf("blocked Get returned %v after Close, want ErrWatcherClosed", err)
	}
	select {
	case <-watch.ctx.Done():
	case <-time.After(testTimeout):
		t.Fatalf("Close did not end the etcd watch")
	}

	put(t, s.Client, "k", "2")
	if _, err := w.Get(testContext(t)); !errors.Is(err, event.ErrWatcherClosed) {
		t.Fatalf("Get after Close returned %v, want ErrWatcherClosed", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
