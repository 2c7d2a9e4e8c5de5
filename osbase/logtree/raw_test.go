package logtree

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestRawLines(t *testing.T) {
	long := strings.Repeat("x", MaxRawLineLength)
	for _, tc := range []struct {
		name   string
		writes []string
		// wantOpen are the lines emitted before Close, want after it.
		wantOpen []string
		want     []string
	}{
		{name: "Lines", writes: []string{"a\nb\n"}, wantOpen: []string{"a", "b"}},
		{name: "EmptyLine", writes: []string{"\n"}, wantOpen: []string{""}},
		{name: "PartialJoined", writes: []string{"a", "b", "c\nd"}, wantOpen: []string{"abc"}, want: []string{"abc", "d"}},
		{name: "CRLF", writes: []string{"a\r\n", "b\r", "\n"}, wantOpen: []string{"a", "b"}},
		{name: "CloseFlushesPartial", writes: []string{"partial"}, wantOpen: []string{}, want: []string{"partial"}},
		{name: "ExactlyLimit", writes: []string{long + "\n"}, wantOpen: []string{long}},
		{name: "ExactlyLimitInPieces", writes: []string{long[:100], long[100:], "\n"}, wantOpen: []string{long}},
		{name: "LongLineSplit", writes: []string{long + long + "yy\n"}, wantOpen: []string{long, long, "yy"}},
		{
			name:     "LongPartialSplitEagerly",
			writes:   []string{long[:3000], long[:3000]},
			wantOpen: []string{long},
			want:     []string{long, strings.Repeat("x", 6000-MaxRawLineLength)},
		},
		{
			name:     "SplitAtRuneBoundary",
			writes:   []string{long[1:] + "é\n"},
			wantOpen: []string{long[1:], "é"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lt := New()
			w := lt.MustRawFor("root.proc")
			for _, s := range tc.writes {
				n, err := w.Write([]byte(s))
				if err != nil || n != len(s) {
					t.Fatalf("Write: %d, %v", n, err)
				}
			}
			if got := texts(backlog(t, lt, "root.proc")); !slices.Equal(got, tc.wantOpen) {
				t.Errorf("before Close: got %q, want %q", got, tc.wantOpen)
			}
			if err := w.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			want := tc.want
			if want == nil {
				want = tc.wantOpen
			}
			entries := backlog(t, lt, "root.proc")
			if got := texts(entries); !slices.Equal(got, want) {
				t.Errorf("after Close: got %q, want %q", got, want)
			}
			for _, e := range entries {
				if e.Leveled != nil || e.Raw == nil || e.DN != "root.proc" || e.Raw.Timestamp().IsZero() {
					t.Errorf("unexpected entry %+v", e)
				}
			}
		})
	}
}

func TestRawClose(t *testing.T) {
	lt := New()
	w := lt.MustRawFor("root")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := w.Write([]byte("x\n")); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write after Close: %v, want os.ErrClosed", err)
	}
	if got := backlog(t, lt, "root"); len(got) != 0 {
		t.Errorf("got %q, want no entries", texts(got))
	}
}
