package logtree

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestLeveledMessages(t *testing.T) {
	for _, tc := range []struct {
		name string
		log  func(l LeveledLogger)
		sev  Severity
		want []string
	}{
		{"Info", func(l LeveledLogger) { l.Info("hello") }, INFO, []string{"hello"}},
		{"InfoMultipleArgs", func(l LeveledLogger) { l.Info("a", 1, 2, "b") }, INFO, []string{fmt.Sprint("a", 1, 2, "b")}},
		{"InfoNonString", func(l LeveledLogger) { l.Info(42) }, INFO, []string{"42"}},
		{"Infof", func(l LeveledLogger) { l.Infof("x=%d", 3) }, INFO, []string{"x=3"}},
		{"InfofNoArgsVerb", func(l LeveledLogger) { l.Infof("100%%") }, INFO, []string{"100%"}},
		{"Warning", func(l LeveledLogger) { l.Warning("w") }, WARNING, []string{"w"}},
		{"Warningf", func(l LeveledLogger) { l.Warningf("w%s", "f") }, WARNING, []string{"wf"}},
		{"Error", func(l LeveledLogger) { l.Error("e") }, ERROR, []string{"e"}},
		{"Errorf", func(l LeveledLogger) { l.Errorf("e%s", "f") }, ERROR, []string{"ef"}},
		{"MultiLine", func(l LeveledLogger) { l.Info("a\nb\n\nc") }, INFO, []string{"a", "b", "", "c"}},
		{"TrailingNewlines", func(l LeveledLogger) { l.Infof("a\n\n") }, INFO, []string{"a"}},
		{"Empty", func(l LeveledLogger) { l.Info() }, INFO, []string{""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lt := New()
			tc.log(lt.MustLeveledFor("root.test"))
			entries := backlog(t, lt, "root.test")
			if len(entries) != 1 {
				t.Fatalf("got %d entries, want 1", len(entries))
			}
			e := entries[0]
			if e.DN != "root.test" || e.Raw != nil || e.Leveled == nil {
				t.Fatalf("unexpected entry %+v", e)
			}
			if got := e.Leveled.Severity(); got != tc.sev {
				t.Errorf("severity %s, want %s", got, tc.sev)
			}
			if got := e.Leveled.Messages(); !slices.Equal(got, tc.want) {
				t.Errorf("messages %q, want %q", got, tc.want)
			}
			if e.Leveled.Timestamp().IsZero() {
				t.Errorf("zero timestamp")
			}
		})
	}
}

func TestLeveledLocation(t *testing.T) {
	lt := New()
	l := lt.MustLeveledFor("root")
	lt.SetVerbosity("root", 1)
	var lines []int
	here := func() int {
		_, _, line, _ := runtime.Caller(1)
		return line
	}
	lines = append(lines, here()+1)
	l.Info("direct")
	lines = append(lines, here()+1)
	l.Warningf("formatted %d", 1)
	lines = append(lines, here()+1)
	l.V(1).Info("verbose")
	lines = append(lines, here()+1)
	l.V(1).Infof("verbose %s", "f")
	lines = append(lines, here()+1)
	wrappedLog(l, "wrapped")

	entries := backlog(t, lt, "root")
	if len(entries) != len(lines) {
		t.Fatalf("got %d entries, want %d", len(entries), len(lines))
	}
	for i, e := range entries {
		want := fmt.Sprintf("leveled_test.go:%d", lines[i])
		if got := e.Leveled.Location(); got != want {
			t.Errorf("%q: location %q, want %q", e.Leveled.MessagesJoined(), got, want)
		}
		if e.Leveled.File() != "leveled_test.go" || e.Leveled.Line() != lines[i] {
			t.Errorf("%q: file/line %q/%d", e.Leveled.MessagesJoined(), e.Leveled.File(), e.Leveled.Line())
		}
	}
}

// wrappedLog is a logging helper, which must not show up as the location.
func wrappedLog(l LeveledLogger, msg string) {
	l.WithAddedStackDepth(1).Info(msg)
}

func TestFatal(t *testing.T) {
	for _, tc := range []struct {
		name string
		log  func(l LeveledLogger)
		want string
	}{
		{"Fatal", func(l LeveledLogger) { l.Fatal("boom ", 1) }, "boom 1"},
		{"Fatalf", func(l LeveledLogger) { l.Fatalf("boom %d", 2) }, "boom 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lt := New()
			var recovered any
			func() {
				defer func() { recovered = recover() }()
				tc.log(lt.MustLeveledFor("root"))
			}()
			if recovered == nil || !strings.Contains(fmt.Sprint(recovered), tc.want) {
				t.Errorf("recovered %v, want panic containing %q", recovered, tc.want)
			}
			entries := backlog(t, lt, "root")
			if len(entries) != 1 || entries[0].Leveled.Severity() != FATAL || entries[0].Leveled.MessagesJoined() != tc.want {
				t.Fatalf("got entries %q, want one FATAL %q", texts(entries), tc.want)
			}
		})
	}
}

func TestVerbosity(t *testing.T) {
	lt := New()
	root := lt.MustLeveledFor("root")
	child := lt.MustLeveledFor("root.child")

	check := func(name string, l LeveledLogger, enabledUpTo VerbosityLevel) {
		t.Helper()
		for v := VerbosityLevel(0); v <= enabledUpTo+1; v++ {
			if got, want := l.V(v).Enabled(), v <= enabledUpTo; got != want {
				t.Errorf("%s: V(%d).Enabled() = %v, want %v", name, v, got, want)
			}
		}
	}
	check("default root", root, 0)
	check("default child", child, 0)

	lt.SetVerbosity("root", 2)
	check("root at 2", root, 2)
	check("inherited by child", child, 2)
	check("inherited by new grandchild", lt.MustLeveledFor("root.child.grandchild"), 2)

	lt.SetVerbosity("root.child", 1)
	check("root unaffected by child", root, 2)
	check("child override", child, 1)
	check("grandchild follows child", lt.MustLeveledFor("root.child.grandchild"), 1)

	lt.SetVerbosity("root", 3)
	check("root at 3", root, 3)
	check("child keeps override", child, 1)

	lt.SetVerbosity("root..bad", 5) // must be ignored without panicking

	root.V(3).Info("emitted")
	root.V(4).Info("dropped")
	root.V(4).Infof("dropped %d", 4)
	entries := backlog(t, lt, "root")
	if got := texts(entries); !slices.Equal(got, []string{"emitted"}) {
		t.Errorf("got %q, want only the enabled verbose entry", got)
	}
	if entries[0].Leveled.Severity() != INFO {
		t.Errorf("verbose entry has severity %s, want INFO", entries[0].Leveled.Severity())
	}
}

func TestInvalidDN(t *testing.T) {
	lt := New()
	if _, err := lt.LeveledFor("a..b"); err == nil {
		t.Error("LeveledFor: want error")
	}
	if _, err := lt.RawFor(".a"); err == nil {
		t.Error("RawFor: want error")
	}
	if _, err := lt.Read("a."); err == nil {
		t.Error("Read: want error")
	}
	for name, fn := range map[string]func(){
		"MustLeveledFor": func() { lt.MustLeveledFor("a..b") },
		"MustRawFor":     func() { lt.MustRawFor("a..b") },
		"SlogFor":        func() { lt.SlogFor("a..b") },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: want panic", name)
				}
			}()
			fn()
		}()
	}
}
