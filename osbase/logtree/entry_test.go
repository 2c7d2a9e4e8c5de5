package logtree

import (
	"testing"
	"time"
)

var testTime = time.Date(2024, 2, 28, 13, 30, 45, 996960000, time.UTC)

func leveled(dn DN, sev Severity, file string, line int, messages ...string) *LogEntry {
	return &LogEntry{DN: dn, Leveled: &LeveledPayload{
		timestamp: testTime,
		severity:  sev,
		messages:  messages,
		file:      file,
		line:      line,
	}}
}

func raw(dn DN, data string) *LogEntry {
	return &LogEntry{DN: dn, Raw: &RawPayload{timestamp: testTime, data: data}}
}

func TestEntryString(t *testing.T) {
	for _, tc := range []struct {
		name  string
		entry *LogEntry
		want  string
	}{
		{
			name:  "Leveled",
			entry: leveled("root.net", WARNING, "main.go", 48, "hello"),
			want:  "root.net W0228 13:30:45.996960 main.go:48] hello",
		},
		{
			name:  "MultiLine",
			entry: leveled("root", ERROR, "a.go", 1, "one", "two"),
			want:  "root E0228 13:30:45.996960 a.go:1] one\nroot E0228 13:30:45.996960 a.go:1] two",
		},
		{
			name:  "NoLocation",
			entry: leveled("root", INFO, "", 0, "x"),
			want:  "root I0228 13:30:45.996960 ] x",
		},
		{
			name:  "Raw",
			entry: raw("root.proc", "output line"),
			want:  "root.proc R0228 13:30:45.996960] output line",
		},
		{
			name:  "Invalid",
			entry: &LogEntry{DN: "root"},
			want:  "root INVALID",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.entry.String(); got != tc.want {
				t.Errorf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestEntryText(t *testing.T) {
	lt := New()
	lt.MustLeveledFor("a").Info("first line\nsecond line")
	raw := lt.MustRawFor("b")
	if _, err := raw.Write([]byte("raw line\n")); err != nil {
		t.Fatal(err)
	}
	for dn, want := range map[DN]string{"a": "first line\nsecond line", "b": "raw line"} {
		r, err := lt.Read(dn, WithBacklog(BacklogAllAvailable))
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Backlog) != 1 {
			t.Fatalf("%s: %d entries, want 1", dn, len(r.Backlog))
		}
		if got := r.Backlog[0].Text(); got != want {
			t.Errorf("%s: Text() = %q, want %q", dn, got, want)
		}
		r.Close()
	}
}
