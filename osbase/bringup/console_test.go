package bringup

import (
	"strings"
	"sync"
	"testing"
	"time"

	"metropolis.dev/osbase/logtree"
)

func TestConsoleShows(t *testing.T) {
	opts := ConsoleOptions{Quiet: []QuietSubtree{
		{DN: "root.kernel"},
		{DN: "root.k8s", MinSeverity: logtree.WARNING},
		{DN: "root.k8s.apiserver", MinSeverity: logtree.ERROR},
	}}
	lt := logtree.New()
	for _, tc := range []struct {
		dn    logtree.DN
		sev   logtree.Severity
		raw   bool
		shown bool
	}{
		{dn: "root.network", sev: logtree.INFO, shown: true},
		{dn: "root.network", raw: true, shown: true},
		{dn: "root.kernel", sev: logtree.FATAL, shown: false},
		{dn: "root.kernel.sub", raw: true, shown: false},
		// A DN sharing a prefix with a quiet one is not below it.
		{dn: "root.kernelish", sev: logtree.INFO, shown: true},
		{dn: "root.k8s", sev: logtree.INFO, shown: false},
		{dn: "root.k8s.kubelet", sev: logtree.WARNING, shown: true},
		{dn: "root.k8s.kubelet", raw: true, shown: false},
		// The most specific rule wins, whatever the order of the rules.
		{dn: "root.k8s.apiserver", sev: logtree.WARNING, shown: false},
		{dn: "root.k8s.apiserver.x", sev: logtree.ERROR, shown: true},
	} {
		if tc.raw {
			w := lt.MustRawFor(tc.dn)
			w.Write([]byte("line\n"))
		} else {
			l := lt.MustLeveledFor(tc.dn)
			switch tc.sev {
			case logtree.INFO:
				l.Info("msg")
			case logtree.WARNING:
				l.Warning("msg")
			case logtree.ERROR:
				l.Error("msg")
			case logtree.FATAL:
				func() {
					defer func() { recover() }()
					l.Fatal("msg")
				}()
			}
		}
		r, err := lt.Read(tc.dn, logtree.WithBacklog(1))
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Backlog) != 1 {
			t.Fatalf("%s: got %d entries, want 1", tc.dn, len(r.Backlog))
		}
		if got := opts.shows(r.Backlog[0]); got != tc.shown {
			t.Errorf("%s (severity %v, raw %v): shown %v, want %v", tc.dn, tc.sev, tc.raw, got, tc.shown)
		}
	}
}

// lockedBuilder is a strings.Builder safe for the console goroutine and
// the test to use.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestConsoleWrites(t *testing.T) {
	lt := logtree.New()
	var out lockedBuilder
	con, err := startConsole(&out, lt, ConsoleOptions{
		Quiet:   []QuietSubtree{{DN: "root.noisy"}},
		Shorten: logtree.ShortenDictionary{{From: "network", To: "net"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	lt.MustLeveledFor("root.network.dhcp").Warningf("lease lost: %s", "timeout")
	lt.MustLeveledFor("root.noisy").Error("not on the console")
	w := lt.MustRawFor("root.proc")
	w.Write([]byte("first\nsecond\n"))
	lt.MustLeveledFor("init").Info("two\nlines")
	con.drain(10 * time.Second)

	got := out.String()
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	want := []string{
		" W root.net.dhcp: lease lost: timeout",
		" R root.proc: first",
		" R root.proc: second",
		" I init: two",
		"lines",
	}
	if len(lines) != len(want) {
		t.Fatalf("console shows %d lines, want %d:\n%s", len(lines), len(want), got)
	}
	for i, w := range want {
		if !strings.HasSuffix(lines[i], w) {
			t.Errorf("line %d is %q, want it to end in %q", i, lines[i], w)
		}
	}
	if strings.Contains(got, "not on the console") {
		t.Errorf("console shows an entry of a hidden subtree:\n%s", got)
	}
}

// blockingWriter blocks every write until release is closed.
type blockingWriter struct {
	release chan struct{}
	out     lockedBuilder
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	<-b.release
	return b.out.Write(p)
}

func TestConsoleReportsMissedEntries(t *testing.T) {
	lt := logtree.NewWithConfig(logtree.Config{StreamBuffer: 4})
	w := &blockingWriter{release: make(chan struct{})}
	con, err := startConsole(w, lt, ConsoleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := lt.MustLeveledFor("root")
	// The console takes the first entry and blocks writing it; four more
	// fill its buffer, and the rest are dropped.
	for range 20 {
		l.Info("entry")
	}
	close(w.release)
	con.drain(10 * time.Second)
	got := w.out.String()
	if !strings.Contains(got, "log entries not shown, the console could not keep up") {
		t.Errorf("console does not report dropped entries:\n%s", got)
	}
}
