package logtree

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"testing"
	"time"
)

func TestSlogLevels(t *testing.T) {
	for _, tc := range []struct {
		name      string
		level     slog.Level
		verbosity VerbosityLevel
		// wantSev is zero if the record must not be emitted.
		wantSev Severity
	}{
		{"Error", slog.LevelError, 0, ERROR},
		{"AboveError", slog.LevelError + 4, 0, ERROR},
		{"Warn", slog.LevelWarn, 0, WARNING},
		{"Info", slog.LevelInfo, 0, INFO},
		{"BetweenInfoAndWarn", slog.LevelInfo + 2, 0, INFO},
		{"DebugDisabled", slog.LevelDebug, 0, 0},
		{"DebugAtV1", slog.LevelDebug, 1, INFO},
		{"SlightlyBelowInfoAtV1", slog.LevelInfo - 1, 1, INFO},
		{"DebugMinus4DisabledAtV1", slog.LevelDebug - 4, 1, 0},
		{"DebugMinus4AtV2", slog.LevelDebug - 4, 2, INFO},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lt := New()
			lt.SetVerbosity("root", tc.verbosity)
			l := lt.SlogFor("root")
			if got, want := l.Enabled(context.Background(), tc.level), tc.wantSev != 0; got != want {
				t.Errorf("Enabled = %v, want %v", got, want)
			}
			l.Log(context.Background(), tc.level, "msg")
			entries := backlog(t, lt, "root")
			if tc.wantSev == 0 {
				if len(entries) != 0 {
					t.Errorf("got %q, want nothing", texts(entries))
				}
				return
			}
			if len(entries) != 1 || entries[0].Leveled.Severity() != tc.wantSev {
				t.Fatalf("got %v, want one entry with severity %s", entries, tc.wantSev)
			}
		})
	}
}

type valuer struct{}

func (valuer) LogValue() slog.Value { return slog.StringValue("resolved") }

func TestSlogAttrs(t *testing.T) {
	ts := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name string
		log  func(l *slog.Logger)
		want string
	}{
		{"NoAttrs", func(l *slog.Logger) { l.Info("m") }, "m"},
		{"Attrs", func(l *slog.Logger) { l.Info("m", "k", "v", "n", 3, "b", true) }, "m k=v n=3 b=true"},
		{"Quoting", func(l *slog.Logger) { l.Info("m", "s", "a b", "e", "", "q", `x"y`, "eq", "a=b") }, `m s="a b" e="" q="x\"y" eq="a=b"`},
		{"Error", func(l *slog.Logger) { l.Info("m", "err", errors.New("it failed")) }, `m err="it failed"`},
		{"Time", func(l *slog.Logger) { l.Info("m", "t", ts) }, "m t=2024-01-02T03:04:05Z"},
		{"Duration", func(l *slog.Logger) { l.Info("m", "d", 1500*time.Millisecond) }, "m d=1.5s"},
		{"LogValuer", func(l *slog.Logger) { l.Info("m", "v", valuer{}) }, "m v=resolved"},
		{"Group", func(l *slog.Logger) { l.Info("m", slog.Group("g", "a", 1, "b", 2)) }, "m g.a=1 g.b=2"},
		{"NestedGroup", func(l *slog.Logger) { l.Info("m", slog.Group("g", slog.Group("h", "a", 1))) }, "m g.h.a=1"},
		{"EmptyGroupOmitted", func(l *slog.Logger) { l.Info("m", slog.Group("g")) }, "m"},
		{"InlineGroup", func(l *slog.Logger) { l.Info("m", slog.Group("", "a", 1)) }, "m a=1"},
		{"EmptyAttrIgnored", func(l *slog.Logger) { l.Info("m", slog.Attr{}, "a", 1) }, "m a=1"},
		{"WithAttrs", func(l *slog.Logger) { l.With("x", 1).Info("m", "y", 2) }, "m x=1 y=2"},
		{"WithGroup", func(l *slog.Logger) { l.WithGroup("g").Info("m", "a", 1) }, "m g.a=1"},
		{"WithGroupNoAttrs", func(l *slog.Logger) { l.WithGroup("g").Info("m") }, "m"},
		{"WithEmptyGroup", func(l *slog.Logger) { l.WithGroup("").Info("m", "a", 1) }, "m a=1"},
		{
			"WithAttrsAndGroups",
			func(l *slog.Logger) { l.With("x", 1).WithGroup("g").With("y", 2).WithGroup("h").Info("m", "z", 3) },
			"m x=1 g.y=2 g.h.z=3",
		},
		{
			"WithDoesNotLeakToParent",
			func(l *slog.Logger) {
				_ = l.With("x", 1).WithGroup("g")
				l.Info("m")
			},
			"m",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lt := New()
			tc.log(lt.SlogFor("root"))
			if got := texts(backlog(t, lt, "root")); !slices.Equal(got, []string{tc.want}) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSlogLocationAndTime(t *testing.T) {
	lt := New()
	l := lt.SlogFor("root")
	_, _, line, _ := runtime.Caller(0)
	l.Warn("here")
	ts := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	r := slog.NewRecord(ts, slog.LevelInfo, "explicit", 0)
	if err := l.Handler().Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}

	entries := backlog(t, lt, "root")
	if len(entries) != 2 {
		t.Fatalf("got %d entries, want 2", len(entries))
	}
	if got, want := entries[0].Leveled.Location(), fmt.Sprintf("slog_test.go:%d", line+1); got != want {
		t.Errorf("location %q, want %q", got, want)
	}
	if got := entries[1].Leveled; !got.Timestamp().Equal(ts) || got.Location() != "" {
		t.Errorf("record without PC: timestamp %v, location %q", got.Timestamp(), got.Location())
	}
}

// recordingLogger is a LeveledLogger not from this package.
type recordingLogger struct {
	LeveledLogger
	got []string
}

func (r *recordingLogger) Info(args ...any)    { r.got = append(r.got, "I "+fmt.Sprint(args...)) }
func (r *recordingLogger) Warning(args ...any) { r.got = append(r.got, "W "+fmt.Sprint(args...)) }
func (r *recordingLogger) Error(args ...any)   { r.got = append(r.got, "E "+fmt.Sprint(args...)) }

func TestSlogForeignLogger(t *testing.T) {
	rl := &recordingLogger{}
	l := slog.New(NewSlogHandler(rl))
	l.Info("i", "a", 1)
	l.Warn("w")
	l.Error("e")
	if want := []string{"I i a=1", "W w", "E e"}; !slices.Equal(rl.got, want) {
		t.Errorf("got %q, want %q", rl.got, want)
	}
}
