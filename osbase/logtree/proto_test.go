package logtree

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	lpb "metropolis.dev/osbase/logtree/proto"
)

func TestProtoRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		entry *LogEntry
	}{
		{"Leveled", leveled("root.a", WARNING, "main.go", 48, "one", "two")},
		{"LeveledNoLocation", leveled("", FATAL, "", 0, "x")},
		{"Raw", raw("root.proc", "output line")},
		{"RawEmpty", raw("root.proc", "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := proto.Marshal(tc.entry.Proto())
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			var p lpb.LogEntry
			if err := proto.Unmarshal(b, &p); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			got, err := LogEntryFromProto(&p)
			if err != nil {
				t.Fatalf("LogEntryFromProto: %v", err)
			}
			if got.DN != tc.entry.DN {
				t.Errorf("DN %q, want %q", got.DN, tc.entry.DN)
			}
			switch want := tc.entry; {
			case want.Leveled != nil:
				g, w := got.Leveled, want.Leveled
				if g == nil || got.Raw != nil {
					t.Fatalf("got %+v, want leveled", got)
				}
				if !g.Timestamp().Equal(w.Timestamp()) || g.Severity() != w.Severity() || !slices.Equal(g.Messages(), w.Messages()) || g.File() != w.File() || g.Line() != w.Line() {
					t.Errorf("got %+v, want %+v", *g, *w)
				}
			case want.Raw != nil:
				g, w := got.Raw, want.Raw
				if g == nil || got.Leveled != nil {
					t.Fatalf("got %+v, want raw", got)
				}
				if !g.Timestamp().Equal(w.Timestamp()) || g.Data() != w.Data() {
					t.Errorf("got %+v, want %+v", *g, *w)
				}
				if l := p.GetRaw().GetOriginalLength(); l != int64(len(w.Data())) {
					t.Errorf("original length %d, want %d", l, len(w.Data()))
				}
			}
		})
	}
}

func TestProtoInvalidUTF8(t *testing.T) {
	e := raw("root.proc", "bad \xff byte")
	p := e.Proto()
	if _, err := proto.Marshal(p); err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	if got, want := p.GetRaw().GetData(), "bad \uFFFD byte"; got != want {
		t.Errorf("data %q, want %q", got, want)
	}
	if got, want := p.GetRaw().GetOriginalLength(), int64(len("bad \xff byte")); got != want {
		t.Errorf("original length %d, want %d", got, want)
	}
	if _, err := proto.Marshal(leveled("root", INFO, "a.go", 1, "\xfe").Proto()); err != nil {
		t.Errorf("Marshal leveled: %v", err)
	}
}

func TestLogEntryFromProtoErrors(t *testing.T) {
	ts := timestamppb.New(time.Unix(1700000000, 0))
	lev := func(mod func(l *lpb.Leveled)) *lpb.LogEntry {
		l := &lpb.Leveled{Lines: []string{"x"}, Timestamp: ts, Severity: lpb.Severity_INFO, Location: "a.go:1"}
		mod(l)
		return &lpb.LogEntry{Dn: "root", Kind: &lpb.LogEntry_Leveled{Leveled: l}}
	}
	for _, tc := range []struct {
		name    string
		p       *lpb.LogEntry
		wantErr string
	}{
		{"Nil", nil, "nil"},
		{"BadDN", &lpb.LogEntry{Dn: "a..b", Kind: &lpb.LogEntry_Raw{Raw: &lpb.Raw{}}}, "DN"},
		{"NoPayload", &lpb.LogEntry{Dn: "root"}, "neither"},
		{"NilLeveled", &lpb.LogEntry{Dn: "root", Kind: &lpb.LogEntry_Leveled{}}, "nil"},
		{"NilRaw", &lpb.LogEntry{Dn: "root", Kind: &lpb.LogEntry_Raw{}}, "nil"},
		{"InvalidSeverity", lev(func(l *lpb.Leveled) { l.Severity = lpb.Severity_SEVERITY_INVALID }), "severity"},
		{"UnknownSeverity", lev(func(l *lpb.Leveled) { l.Severity = 42 }), "severity"},
		{"NoTimestamp", lev(func(l *lpb.Leveled) { l.Timestamp = nil }), "timestamp"},
		{"BadTimestamp", lev(func(l *lpb.Leveled) { l.Timestamp = &timestamppb.Timestamp{Nanos: -1} }), "timestamp"},
		{"NoLines", lev(func(l *lpb.Leveled) { l.Lines = nil }), "lines"},
		{"NewlineInLine", lev(func(l *lpb.Leveled) { l.Lines = []string{"a\nb"} }), "newline"},
		{"LocationNoColon", lev(func(l *lpb.Leveled) { l.Location = "a.go" }), "location"},
		{"LocationNoFile", lev(func(l *lpb.Leveled) { l.Location = ":1" }), "location"},
		{"LocationBadLine", lev(func(l *lpb.Leveled) { l.Location = "a.go:x" }), "location"},
		{"LocationNegativeLine", lev(func(l *lpb.Leveled) { l.Location = "a.go:-1" }), "location"},
		{"RawNewline", &lpb.LogEntry{Dn: "root", Kind: &lpb.LogEntry_Raw{Raw: &lpb.Raw{Data: "a\n"}}}, "newline"},
		{"RawBadTimestamp", &lpb.LogEntry{Dn: "root", Kind: &lpb.LogEntry_Raw{Raw: &lpb.Raw{Timestamp: &timestamppb.Timestamp{Seconds: -1 << 62}}}}, "timestamp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := LogEntryFromProto(tc.p)
			if err == nil {
				t.Fatalf("got %v, want error", e)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not mention %q", err, tc.wantErr)
			}
		})
	}

	// Raw entries from producers which do not set a timestamp are fine.
	e, err := LogEntryFromProto(&lpb.LogEntry{Dn: "root", Kind: &lpb.LogEntry_Raw{Raw: &lpb.Raw{Data: "x"}}})
	if err != nil || e.Raw == nil || !e.Raw.Timestamp().IsZero() || e.Raw.Data() != "x" {
		t.Errorf("raw without timestamp: %+v, %v", e, err)
	}
}

func FuzzLogEntryFromProto(f *testing.F) {
	for _, e := range []*LogEntry{
		leveled("root.a", WARNING, "main.go", 48, "one", "two"),
		leveled("", INFO, "", 0, ""),
		raw("root.proc", "line"),
	} {
		b, err := proto.Marshal(e.Proto())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p lpb.LogEntry
		if err := proto.Unmarshal(b, &p); err != nil {
			return
		}
		e, err := LogEntryFromProto(&p)
		if err != nil {
			return
		}
		// Anything accepted must survive formatting and another round trip.
		_ = e.ConciseString(MetropolisShortenDict, 40)
		e2, err := LogEntryFromProto(e.Proto())
		if err != nil {
			t.Fatalf("re-encoding accepted entry failed: %v", err)
		}
		if e.String() != e2.String() {
			t.Fatalf("round trip changed entry: %q != %q", e.String(), e2.String())
		}
	})
}
