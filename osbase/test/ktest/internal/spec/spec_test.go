package spec

import "testing"

func TestResultMatcher(t *testing.T) {
	match := ResultMatcher("abc123")
	for _, tc := range []struct {
		line string
		ok   bool
		want Result
	}{
		{PassLine("abc123"), true, Result{Pass: true}},
		{FailLine("abc123", ExitReason(1)), true, Result{Reason: "exit status 1"}},
		{FailLine("abc123", "init: loading module x: no such module"), true, Result{Reason: "init: loading module x: no such module"}},
		// Kernel messages may share the line.
		{"[   12.3] random: crng init done" + PassLine("abc123"), true, Result{Pass: true}},
		// Another run's line, or one the tests printed, does not count.
		{PassLine("abc124"), false, Result{}},
		{"KTEST-RESULT : PASS", false, Result{}},
		{PassLine("abc123") + " and more", false, Result{}},
		{"KTEST-RESULT abc123: MAYBE", false, Result{}},
	} {
		got, ok := match(tc.line)
		if ok != tc.ok || got != tc.want {
			t.Errorf("match(%q) = %+v, %v; want %+v, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}
