package logtree

import (
	"testing"

	lpb "metropolis.dev/osbase/logtree/proto"
)

func TestSeverity(t *testing.T) {
	ordered := []struct {
		s      Severity
		letter string
		proto  lpb.Severity
	}{
		{INFO, "I", lpb.Severity_INFO},
		{WARNING, "W", lpb.Severity_WARNING},
		{ERROR, "E", lpb.Severity_ERROR},
		{FATAL, "F", lpb.Severity_FATAL},
	}
	for i, a := range ordered {
		if got := a.s.String(); got != a.letter {
			t.Errorf("%d: String() = %q, want %q", i, got, a.letter)
		}
		if !a.s.Valid() {
			t.Errorf("%s: not valid", a.s)
		}
		if got := severityToProto(a.s); got != a.proto {
			t.Errorf("%s: proto %v, want %v", a.s, got, a.proto)
		}
		if got, err := severityFromProto(a.proto); err != nil || got != a.s {
			t.Errorf("%v: from proto %v, %v, want %s", a.proto, got, err, a.s)
		}
		for j, b := range ordered {
			if got, want := a.s.AtLeast(b.s), i >= j; got != want {
				t.Errorf("%s.AtLeast(%s) = %v, want %v", a.s, b.s, got, want)
			}
		}
	}
	for _, s := range []Severity{0, FATAL + 1, -1} {
		if s.Valid() {
			t.Errorf("%d: valid, want invalid", s)
		}
	}
}
