package devicemapper

import (
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Target
	}{
		{"0 2048 linear /dev/vda 0", Target{0, 2048, "linear", "/dev/vda 0"}},
		{"  16\t8 zero  ", Target{16, 8, "zero", ""}},
		{"0 81920 verity 1 /dev/vda /dev/vda 4096 4096 10240 10240 sha256 ab 12 1 ignore_zero_blocks",
			Target{0, 81920, "verity", "1 /dev/vda /dev/vda 4096 4096 10240 10240 sha256 ab 12 1 ignore_zero_blocks"}},
		// Spacing inside the parameters is kept: targets parse their own.
		{"0 1 error a  b", Target{0, 1, "error", "a  b"}},
		{"18446744073709551615 1 zero", Target{1<<64 - 1, 1, "zero", ""}},
	} {
		got, err := ParseTarget(tc.line)
		if err != nil || got != tc.want {
			t.Errorf("ParseTarget(%q) = %+v, %v; want %+v", tc.line, got, err, tc.want)
		}
	}
}

func TestParseTargetRejects(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"", "want <start>"},
		{"0 8", "want <start>"},
		{"x 8 zero", "start sector"},
		{"0 -8 zero", "length"},
		{"0 18446744073709551616 zero", "length"},
	} {
		_, err := ParseTarget(tc.line)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseTarget(%q): got %v, want an error about %q", tc.line, err, tc.want)
		}
	}
}

func TestTargetStringRoundTrip(t *testing.T) {
	for _, tg := range []Target{
		{0, 2048, "linear", "/dev/vda 0"},
		{8, 8, "zero", ""},
	} {
		got, err := ParseTarget(tg.String())
		if err != nil || got != tg {
			t.Errorf("%+v renders as %q, which parses as %+v (%v)", tg, tg.String(), got, err)
		}
	}
}
