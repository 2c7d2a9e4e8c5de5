package main

import (
	"strings"
	"testing"
)

func TestParseKnobs(t *testing.T) {
	for _, tc := range []struct {
		cmdline string
		want    knobs
		err     string
	}{
		{cmdline: "quiet console=ttyS0,115200\n"},
		{cmdline: "quiet metropolis.dns_check=probe.test.example\n", want: knobs{dnsCheck: "probe.test.example"}},
		{cmdline: "metropolis.dns_check=probe.example.", want: knobs{dnsCheck: "probe.example."}},
		{cmdline: "metropolis.dns_check=", err: "not a host name"},
		{cmdline: "metropolis.dns_check=a..b", err: `label ""`},
		{cmdline: "metropolis.dns_check=a_b.example", err: "other than letters"},
		{cmdline: "metropolis.dns_check=" + strings.Repeat("a", 64) + ".example", err: "not 1 to 63"},
		{cmdline: "metropolis.dns_check=a metropolis.dns_check=b", err: "more than once"},
		{cmdline: `metropolis.dns_check="a`, err: "quote"},
	} {
		got, err := parseKnobs(tc.cmdline)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.cmdline, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: got error %v, want one containing %q", tc.cmdline, err, tc.err)
		case tc.err == "" && got != tc.want:
			t.Errorf("%q: got %+v, want %+v", tc.cmdline, got, tc.want)
		}
	}
}
